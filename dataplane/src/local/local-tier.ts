import type { BigIntStats } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { KeyGuard } from '../blob/key-guards.ts';
import { blobInfo, type BlobRead, type ByteRange } from '../blob/store.ts';
import type { ReadAheadBudget } from '../redis/chunks.ts';
import { streamOfPieces } from '../blob/piece-source.ts';
import { BudgetedPieces, fileRangeSource } from './budgeted-pieces.ts';
import { ByteLedger } from './byte-ledger.ts';
import { followFill, LocalFill } from './local-fill.ts';

export interface LocalTierOptions {
  /** The tier's own directory: files named like keys in it are removed when it opens. */
  dir: string;
  /** Bytes of copies kept (least recently used evicted past it). */
  maxBytes: number;
  /** Smallest blob kept; smaller ones are the in-process hot tier's. */
  minBlobBytes: number;
  /**
   * Longest a copy is trusted: the lifetime of a DELETE's tombstone in Redis, so that the
   * generation compared on every read cannot have gone back to the value it had when the
   * copy was made (a DELETE whose announcement this process missed is still seen).
   */
  maxAgeMs: number;
  /** Bytes read from disk at a time while `budget` has room (else 64 KiB). */
  pieceBytes: number;
  /** The process's read-ahead budget: large pieces held ahead of clients count against it. */
  budget: ReadAheadBudget;
  onQuarantine: (key: string, detail: string) => void;
  /** A copy could not be kept (a full disk, a failed source); the read goes on without it. */
  onSkipped: (key: string, reason: string) => void;
  onEvicted: () => void;
}

/** A verified copy on disk, and the file's stamp once it was verified and published. */
interface Copy {
  path: string;
  size: number;
  sha256: string | undefined;
  /** The blob's Redis generation when the copy was made; a DELETE changes it. */
  generation: string;
  stamp: Stamp;
  storedAt: number;
}

interface Stamp {
  size: bigint;
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

const KEY_NAME = /^[0-9a-f]{32}$/;

/**
 * The per-process local tier (docs/decisions/0073): verified copies of large blobs in a
 * bounded directory between the in-process hot tier and Redis. The first read of a large
 * blob starts a copy from Redis (`startFill`); readers arriving meanwhile follow the copy
 * as it is written (`follow`), so a popular blob is read from its shard once per process;
 * later reads come from the file (`read`) while its stamp (size, inode, mtime, ctime)
 * is the one taken when it was published and its generation is the blob's current one.
 */
export class LocalTier {
  private readonly options: LocalTierOptions;
  private readonly ledger: ByteLedger<Copy>;
  private readonly fills = new Map<string, LocalFill>();

  private constructor(options: LocalTierOptions) {
    this.options = options;
    this.ledger = new ByteLedger<Copy>({
      maxBytes: options.maxBytes,
      onEvict: (_key, copy) => {
        options.onEvicted();
        void rm(copy.path, { force: true });
      },
    });
  }

  /**
   * Opens the tier, emptying it: nothing a previous process left is trusted (its copies
   * would have to be hashed again to be, which costs what refilling them from Redis does).
   */
  static async open(options: LocalTierOptions): Promise<LocalTier> {
    await mkdir(options.dir, { recursive: true });
    await rm(join(options.dir, 'tmp'), { recursive: true, force: true });
    for (const name of await readdir(options.dir)) {
      if (KEY_NAME.test(name)) await rm(join(options.dir, name), { force: true });
    }
    await mkdir(join(options.dir, 'tmp'));
    return new LocalTier(options);
  }

  stats(): { bytes: number; copies: number; evictions: number } {
    const { bytes, entries, evictions } = this.ledger.stats();
    return { bytes, copies: entries, evictions };
  }

  admits(size: number): boolean {
    return size >= this.options.minBlobBytes && size <= this.options.maxBytes;
  }

  /** True when a published copy of `key` is held (it may still be found stale or damaged). */
  holds(key: string): boolean {
    return this.ledger.has(key);
  }

  /** The copy of `key` being written, if any. */
  filling(key: string): LocalFill | undefined {
    return this.fills.get(key);
  }

  /**
   * Streams the held copy of `key` (or `range` of it), or null when there is none to
   * trust: made under another generation (the blob was deleted since), too old, or changed
   * on disk since it was verified (then it is quarantined). `deleted` is checked once the
   * file is open, so a DELETE that arrived meanwhile is not served.
   */
  async read(
    key: string,
    generation: string,
    range: ByteRange | undefined,
    deleted: () => boolean,
  ): Promise<BlobRead | null> {
    const copy = this.ledger.get(key);
    if (copy === undefined) return null;
    if (copy.generation !== generation || Date.now() - copy.storedAt > this.options.maxAgeMs) {
      this.drop(key, copy);
      return null;
    }
    const release = this.ledger.pin(key)!;
    const handle = await open(copy.path, 'r').catch(() => undefined);
    if (handle === undefined) {
      release();
      this.drop(key, copy);
      return null;
    }
    const found = await handle.stat({ bigint: true }).catch(() => undefined);
    if (deleted() || this.ledger.get(key) !== copy || found === undefined) {
      release();
      await handle.close();
      return null;
    }
    if (!sameStamp(copy.stamp, found)) {
      release();
      await handle.close();
      this.quarantine(key, copy, 'the file changed on disk after it was verified');
      return null;
    }
    const { pieceBytes, budget } = this.options;
    const source = fileRangeSource(handle, range?.start ?? 0, range?.end ?? copy.size - 1, release);
    // The HTTP layer reads `source` into buffers it reuses; other consumers get the stream.
    const stream = streamOfPieces(source, new BudgetedPieces(budget, pieceBytes));
    return { info: blobInfo(key, copy.size, copy.sha256), stream, source };
  }

  /**
   * Starts copying a blob in from `source` unless it is not admitted, already held or being
   * copied, or there is no room (then undefined: the read goes on without a copy). `guard`
   * was entered before the blob's manifest and generation were read; the copy is abandoned
   * if a DELETE marks it, and the fill leaves it when done.
   */
  startFill(
    blob: { key: string; size: number; sha256?: string },
    generation: string,
    source: () => Readable,
    guard: KeyGuard,
  ): LocalFill | undefined {
    const { key, size } = blob;
    if (!this.admits(size) || this.fills.has(key) || this.ledger.has(key) || guard.deleted) {
      guard.leave();
      return this.fills.get(key);
    }
    if (!this.ledger.reserve(size)) {
      guard.leave();
      this.options.onSkipped(key, 'no room: the tier is full of copies being read');
      return undefined;
    }
    const fill = new LocalFill(key, size, join(this.options.dir, 'tmp', `${key}.${randomUUID()}`));
    this.fills.set(key, fill);
    void this.run(fill, blob.sha256, generation, source, guard);
    return fill;
  }

  private async run(
    fill: LocalFill,
    sha256: string | undefined,
    generation: string,
    source: () => Readable,
    guard: KeyGuard,
  ): Promise<void> {
    const { key, size } = fill;
    let kept = false;
    try {
      await fill.write(source(), sha256 === undefined ? {} : { sha256 }, guard.signal);
      const path = join(this.options.dir, key);
      await rename(fill.tempPath, path);
      fill.path = path;
      // Taken after the rename, which changes the ctime: any later write, truncation,
      // chmod or utimes changes the ctime again.
      const published = await stat(path, { bigint: true });
      if (guard.deleted || this.fills.get(key) !== fill) {
        await rm(path, { force: true });
      } else {
        this.ledger.add(key, size, {
          path,
          size,
          sha256,
          generation,
          stamp: stampOf(published),
          storedAt: Date.now(),
        });
        kept = true;
      }
      fill.complete();
    } catch (error) {
      fill.fail();
      await rm(fill.tempPath, { force: true }).catch(() => undefined);
      if (!guard.deleted) this.options.onSkipped(key, String(error));
    } finally {
      if (!kept) this.ledger.unreserve(size);
      if (this.fills.get(key) === fill) this.fills.delete(key);
      guard.leave();
    }
  }

  /**
   * Streams bytes `from..end` of a blob as its copy is written, continuing from `rest` where
   * the copy stopped (it failed, or was abandoned for a DELETE).
   */
  follow(fill: LocalFill, range: ByteRange, rest: (from: number) => Readable): Readable {
    const { pieceBytes, budget } = this.options;
    async function* bytes(): AsyncGenerator<Buffer> {
      const pieces = new BudgetedPieces(budget, pieceBytes);
      const reached = yield* followFill(fill, range.start, range.end, pieces);
      if (reached > range.end) return;
      // The copy found the source damaged: completing the transfer from it would pass the
      // damage on as a whole blob. Cut it instead (the client sees a short body).
      if (fill.damaged) throw new Error(`Blob ${fill.key} does not hash to its key in Redis`);
      yield* rest(reached) as AsyncIterable<Buffer>;
    }
    return Readable.from(bytes(), { objectMode: false, highWaterMark: 0 });
  }

  /** Drops `key` (a DELETE anywhere): no read that starts from now on is served from here. */
  forget(key: string): void {
    const fill = this.fills.get(key);
    if (fill !== undefined) {
      this.fills.delete(key);
      fill.fail();
    }
    const copy = this.ledger.remove(key);
    if (copy !== undefined) void rm(copy.path, { force: true });
  }

  private drop(key: string, copy: Copy): void {
    if (this.ledger.get(key) !== copy) return;
    this.ledger.remove(key);
    void rm(copy.path, { force: true });
  }

  private quarantine(key: string, copy: Copy, detail: string): void {
    this.drop(key, copy);
    this.options.onQuarantine(key, detail);
  }
}

function stampOf(stats: BigIntStats): Stamp {
  return { size: stats.size, ino: stats.ino, mtimeNs: stats.mtimeNs, ctimeNs: stats.ctimeNs };
}

function sameStamp(stamp: Stamp, stats: BigIntStats): boolean {
  const found = stampOf(stats);
  return (
    found.size === stamp.size &&
    found.ino === stamp.ino &&
    found.mtimeNs === stamp.mtimeNs &&
    found.ctimeNs === stamp.ctimeNs
  );
}
