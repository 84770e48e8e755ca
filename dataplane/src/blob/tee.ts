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
  private readonly branch = new PassThrough();
  private failed = false;

  /**
   * @param sink consumes the side stream.
   * @param options.commitOnEnd commit when the main stream ends, and hold its end back until
   *   the sink has settled (so a reader that saw the end finds the copy in place).
   */
  constructor(sink: (source: Readable) => Promise<T>, options: { commitOnEnd?: boolean } = {}) {
    this.done = sink(this.branch).then(
      (result) => result,
      (error: unknown) => {
        this.failed = true;
        this.branch.emit('drain');
        return error instanceof Error ? error : new Error(String(error));
      },
    );
    const branch = this.branch;
    const isFailed = (): boolean => this.failed;
    const commitOnEnd = options.commitOnEnd === true ? () => this.commit() : undefined;
    this.transform = new Transform({
      flush(callback: TransformCallback) {
        if (commitOnEnd === undefined) callback();
        // The side copy is optional: its failure never fails the main stream.
        else void commitOnEnd().then(() => callback());
      },
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        if (isFailed() || branch.write(chunk)) {
          callback(null, chunk);
          return;
        }
        branch.once('drain', () => callback(null, chunk));
      },
    });
  }

  /** Ends the side stream: the sink verifies and keeps its copy. */
  commit(): Promise<T | Error> {
    if (!this.failed) this.branch.end();
    return this.done;
  }

  /** Abandons the side copy. */
  abort(reason: Error): Promise<T | Error> {
    this.branch.destroy(reason);
    return this.done;
  }
}
