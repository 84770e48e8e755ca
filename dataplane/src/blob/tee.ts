import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';

/**
 * Copies the bytes flowing through `transform` into a side consumer (`sink`). The side
 * stream only sees its end when `commit()` is called, so the caller decides whether the
 * copy is kept (after the main path succeeded) or abandoned (`abort()`).
 *
 * Backpressure from the side is honoured, so memory stays bounded; if the side gives up
 * (say the blob is too large for it) the main stream carries on without it.
 */
export class Tee<T> {
  readonly transform: Transform;
  /** Settles with the sink's outcome; never rejects (failures resolve to the error). */
  readonly done: Promise<T | Error>;
  /**
   * The side stream, let go of once the sink failed: a destroyed stream keeps the
   * listeners `pipeline` put on it, and through them every stream of the sink and what
   * those hold (a partial copy), for as long as the main stream lives (a stalled reader's
   * whole connection). See docs/decisions/0018.
   */
  private branch: PassThrough | undefined = new PassThrough();

  /**
   * @param sink consumes the side stream.
   * @param options.commitOnEnd commit when the main stream ends, and hold its end back until
   *   the sink has settled (so a reader that saw the end finds the copy in place).
   */
  constructor(sink: (source: Readable) => Promise<T>, options: { commitOnEnd?: boolean } = {}) {
    this.done = sink(this.branch!).then(
      (result) => result,
      (error: unknown) => {
        const branch = this.branch;
        this.branch = undefined;
        // Wakes a write waiting for room on the side: it goes on without it.
        branch?.emit('drain');
        return error instanceof Error ? error : new Error(String(error));
      },
    );
    const side = (): PassThrough | undefined => this.branch;
    const commitOnEnd = options.commitOnEnd === true ? () => this.commit() : undefined;
    this.transform = new Transform({
      flush(callback: TransformCallback) {
        if (commitOnEnd === undefined) callback();
        // The side copy is optional: its failure never fails the main stream.
        else void commitOnEnd().then(() => callback());
      },
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        const branch = side();
        if (branch === undefined || branch.write(chunk)) {
          callback(null, chunk);
          return;
        }
        branch.once('drain', () => callback(null, chunk));
      },
    });
  }

  /** Ends the side stream: the sink verifies and keeps its copy. */
  commit(): Promise<T | Error> {
    this.branch?.end();
    return this.done;
  }

  /** Abandons the side copy. */
  abort(reason: Error): Promise<T | Error> {
    this.branch?.destroy(reason);
    return this.done;
  }
}
