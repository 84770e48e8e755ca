import { open, type FileHandle } from 'node:fs/promises';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, SizeMismatchError } from '../blob/errors.ts';
import { DigestVerifier } from '../blob/verifier.ts';
import type { BudgetedPieces } from './budgeted-pieces.ts';

export type FillState = 'running' | 'complete' | 'failed';

/**
 * One copy of a blob being written into the local tier's temp file, verified on its way in.
 * The bytes pass a `DigestVerifier` before they are written, and it holds the last piece
 * back until MD5 and size matched: so `written` reaches the blob's size only once the
 * whole copy is verified, and readers following the fill (`follow`) never read a last
 * byte the verifier did not pass.
 */
export class LocalFill {
  readonly key: string;
  readonly size: number;
  readonly tempPath: string;
  /** Where the copy is now: the temp file, then (once published) the tier's file. */
  path: string;
  /** Bytes written to the temp file so far (all of them verified once it equals `size`). */
  written = 0;
  state: FillState = 'running';
  /** The source did not hash to the key: its bytes must not be completed from there either. */
  damaged = false;
  private waiters: (() => void)[] = [];
  /** Resolves once the temp file exists (true), or the fill failed before (false). */
  readonly created: Promise<boolean>;
  private markCreated!: (created: boolean) => void;

  constructor(key: string, size: number, tempPath: string) {
    this.key = key;
    this.size = size;
    this.tempPath = tempPath;
    this.path = tempPath;
    this.created = new Promise((resolve) => (this.markCreated = resolve));
  }

  /** Resolves at the next change of `written` or `state`. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Copies `source` into the temp file (created here, exclusively), verified against the
   * key, size and SHA-256. Rejects (the temp file left for the caller to remove) on any
   * failure: a short or damaged source, a full disk, `signal` aborted.
   */
  async write(source: Readable, expect: { sha256?: string }, signal: AbortSignal): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.tempPath, 'wx');
      this.markCreated(true);
      const file = handle;
      const verifier = new DigestVerifier({
        md5: this.key,
        size: this.size,
        ...(expect.sha256 === undefined ? {} : { sha256: expect.sha256 }),
      });
      const sink = new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          file
            .write(chunk, 0, chunk.length, this.written)
            .then(({ bytesWritten }) => {
              // A short write happens only when the disk is full; the next write would fail.
              if (bytesWritten !== chunk.length) throw new Error('Short write to the local tier');
              this.written += bytesWritten;
              this.notify();
            })
            .then(() => callback(), callback);
        },
      });
      await pipeline(source, verifier, sink, { signal });
      if (this.written !== this.size) throw new Error('The local copy ended short');
    } catch (error) {
      this.damaged = error instanceof DigestMismatchError || error instanceof SizeMismatchError;
      this.fail();
      throw error;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /** The copy is whole and verified (it may or may not have been published). */
  complete(): void {
    this.state = 'complete';
    this.notify();
  }

  fail(): void {
    this.markCreated(false);
    if (this.state !== 'running') return;
    this.state = 'failed';
    this.notify();
  }
}

/**
 * Reads the fill's file from `from` as far as it is written, waiting for more until the
 * copy is whole, in budgeted pieces. Returns the offset reached: past `end`, or less when
 * the fill failed (the caller goes on from another tier there).
 */
export async function* followFill(
  fill: LocalFill,
  from: number,
  end: number,
  pieces: BudgetedPieces,
): AsyncGenerator<Buffer, number> {
  // Readers may come before the writer has created the file: wait for it.
  if (!(await fill.created)) return from;
  let handle: FileHandle | undefined;
  for (let attempt = 0; handle === undefined && attempt < 2; attempt++) {
    // The fill may publish (rename) between reading `path` and opening it: look again.
    handle = await open(fill.path, 'r').catch(() => undefined);
  }
  if (handle === undefined) return from;
  let offset = from;
  try {
    while (offset <= end) {
      if (offset >= fill.written) {
        if (fill.state === 'failed') return offset;
        await fill.changed();
        continue;
      }
      const piece = await pieces.read(handle, offset, Math.min(fill.written, end + 1) - offset);
      if (piece.length === 0) return offset;
      offset += piece.length;
      yield piece;
      pieces.handedOnOne();
    }
    return offset;
  } finally {
    pieces.close();
    await handle.close().catch(() => undefined);
  }
}
