import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import type { BlobStore, PutOptions, PutResult } from './store.ts';

/**
 * Copies the bytes flowing through `transform` into `store.put` on the side. The side put
 * only sees the end of its stream when `commit()` is called, so the caller decides whether
 * the copy is published (after the main path succeeded) or abandoned (`abort()`).
 *
 * Backpressure from the side store is honoured, so memory stays bounded; if the side store
 * gives up (say the blob is too large for it) the main stream carries on without it.
 */
export class StoreTee {
  readonly transform: Transform;
  /** Settles with the side put's outcome; never rejects (failures resolve to the error). */
  readonly done: Promise<PutResult | Error>;
  private readonly branch = new PassThrough();
  private failed = false;

  constructor(store: BlobStore, options: PutOptions) {
    this.done = store.put(this.branch, options).then(
      (result) => result,
      (error: unknown) => {
        this.failed = true;
        this.branch.emit('drain');
        return error instanceof Error ? error : new Error(String(error));
      },
    );
    const branch = this.branch;
    const isFailed = (): boolean => this.failed;
    this.transform = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        if (isFailed() || branch.write(chunk)) {
          callback(null, chunk);
          return;
        }
        branch.once('drain', () => callback(null, chunk));
      },
    });
  }

  /** Ends the side stream: the side store verifies and publishes. */
  commit(): Promise<PutResult | Error> {
    if (!this.failed) this.branch.end();
    return this.done;
  }

  /** Abandons the side copy: nothing is published. */
  abort(reason: Error): Promise<PutResult | Error> {
    this.branch.destroy(reason);
    return this.done;
  }
}
