import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type {
  BlobInfo,
  BlobRead,
  BlobStore,
  ByteRange,
  PutOptions,
  PutResult,
} from '../blob/store.ts';
import { BlobTooLargeError } from '../blob/errors.ts';
import { DigestVerifier, type VerifiedDigest } from '../blob/verifier.ts';

/** No room: the budget is held by reads under way; the blob is just not cached. */
export class CacheFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheFullError';
  }
}

/** Another put is copying the same blob in; this one is not needed. */
export class CopyUnderWayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CopyUnderWayError';
  }
}

export interface MemoryLruOptions {
  /** Total bytes held; least recently used blobs are evicted past it. */
  maxBytes: number;
  /** Largest single blob admitted; larger puts fail with `BlobTooLargeError`. */
  maxEntryBytes: number;
  /** Entries older than this are dropped on access (a safety net for invalidation). @default none */
  ttlMs?: number;
}

interface Entry {
  info: BlobInfo;
  readonly chunks: readonly Buffer[];
  storedAt: number;
  /** Reads under way that hold the chunks (a response still writing them). */
  readers: number;
  /** Evicted or deleted while read: its bytes stay counted until the last reader is done. */
  gone: boolean;
}

/**
 * `chunk`, or a copy of its bytes in memory of their own when it is a view into a buffer
 * much larger than itself: the short last piece of a file read in 64 KiB pieces, a slice
 * of Node's shared pool. Kept as is, it would keep that whole buffer alive for as long as
 * the entry lives while the budget counts only the view (measured: reading 12,000 4 KiB
 * blobs from the embedded tier's disk into a 64 MiB tier left 762 MiB of buffers alive, and
 * 87 MiB with this copy).
 */
function ownMemory(chunk: Buffer): Buffer {
  if (chunk.buffer.byteLength - chunk.length <= Math.max(1024, chunk.length / 8)) return chunk;
  const copy = Buffer.allocUnsafeSlow(chunk.length);
  chunk.copy(copy);
  return copy;
}

/**
 * A size-bounded, in-process LRU of whole blobs: the embedded fast tier and, later, the
 * per-pod hot tier. Blobs are kept as the chunks they arrived in (no concatenation; a copy
 * only of a chunk that is a small view into a larger buffer) and only after their MD5 was
 * verified. Capacity is bounded in bytes, so the process's memory stays bounded however
 * large the blobs passing through are.
 *
 * Reads are served by reference (docs/decisions/0018): a read pins its entry until it calls
 * `release()`, and an entry evicted while pinned keeps counting against the budget until
 * then. Puts reserve their bytes as they arrive, one put per key at a time, and let go of
 * them when they fail. So readers that stop reading (their sockets holding our buffers, or
 * their copy half made) can never take memory past `maxBytes`: with the budget pinned or
 * reserved, new blobs are simply not cached.
 */
export class MemoryLruStore implements BlobStore {
  private readonly entries = new Map<string, Entry>();
  private readonly options: MemoryLruOptions;
  /** Bytes of entries in the map, of pinned entries gone from it, and of puts under way. */
  private bytes = 0;
  private evictions = 0;
  /** Keys of puts under way (a second put of one of them is refused). */
  private readonly copying = new Set<string>();
  /** The entry last in the map's order (most recently used), when known. */
  private newest: Entry | undefined;

  constructor(options: MemoryLruOptions) {
    this.options = options;
  }

  /** True when a blob of `size` bytes would be admitted. */
  admits(size: number): boolean {
    return size <= this.options.maxEntryBytes;
  }

  /** Bytes currently held and blobs evicted so far (for metrics). */
  stats(): { bytes: number; blobs: number; evictions: number } {
    return { bytes: this.bytes, blobs: this.entries.size, evictions: this.evictions };
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const { ttlMs } = this.options;
    if (ttlMs !== undefined && Date.now() - entry.storedAt > ttlMs) {
      this.remove(key, entry);
      return undefined;
    }
    return entry;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    if (this.newest === entry) this.newest = undefined;
    entry.gone = true;
    if (entry.readers === 0) this.bytes -= entry.info.size;
  }

  /** Makes room for `size` more bytes by evicting, or says there is none. */
  private reserve(size: number): boolean {
    this.bytes += size;
    this.evict();
    if (this.bytes <= this.options.maxBytes) return true;
    this.bytes -= size;
    return false;
  }

  private pin(entry: Entry): () => void {
    entry.readers += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.readers -= 1;
      if (entry.readers === 0 && entry.gone) this.bytes -= entry.info.size;
    };
  }

  private touch(key: string): Entry | undefined {
    const entry = this.live(key);
    // Map keeps insertion order: re-inserting moves the entry to the most recent end, which
    // a hot blob read over and over already is (re-inserting costs a hit measurably).
    if (entry !== undefined && entry !== this.newest) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.newest = entry;
    }
    return entry;
  }

  head(key: string): Promise<BlobInfo | null> {
    return Promise.resolve(this.live(key)?.info ?? null);
  }

  get(key: string, range?: ByteRange): Promise<BlobRead | null> {
    return Promise.resolve(this.peek(key, range));
  }

  /**
   * `get` without the promise: the bytes are in memory already. The read pins the entry:
   * call `release()` once its chunks are no longer referenced (the stream, if used,
   * releases when it closes).
   */
  peek(key: string, range?: ByteRange): BlobRead | null {
    const entry = this.touch(key);
    if (entry === undefined) return null;
    // The entry's chunks are never changed once stored: a whole read shares its list.
    const chunks =
      range === undefined ? entry.chunks : [...slices(entry.chunks, range.start, range.end)];
    const release = this.pin(entry);
    return {
      info: entry.info,
      chunks,
      release,
      // Made on first use: the HTTP layer writes `chunks` directly and never asks.
      get stream() {
        const stream = Readable.from(chunks, { objectMode: false });
        stream.once('close', release);
        return stream;
      },
    };
  }

  /**
   * Copies `source` in, verified against `options`. Every byte the put holds is reserved in
   * the budget from the moment it arrives (before the verifier, which holds one chunk
   * back), and a failed put lets go of its chunks at once: the stream that fed it may stay
   * referenced long after (a tee's side of a stalled reader), and must not keep them.
   * A put of a key that another put is copying in already fails at once with
   * `CopyUnderWayError`: readers of one blob make one copy, not one each.
   */
  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    const { key } = options;
    if (key !== undefined && this.copying.has(key)) {
      throw new CopyUnderWayError(`Blob ${key} is being copied into the memory tier already`);
    }
    if (key !== undefined) this.copying.add(key);
    const maxBytes = Math.min(options.maxBytes ?? Infinity, this.options.maxEntryBytes);
    const chunks: Buffer[] = [];
    let reserved = 0;
    const reserve = (size: number): boolean => {
      if (!this.reserve(size)) return false;
      reserved += size;
      return true;
    };
    const take = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        // Checked before reserving: bytes that will be refused must evict nothing.
        if (reserved + chunk.length > maxBytes || (options.size ?? 0) > maxBytes) {
          callback(new BlobTooLargeError(`The blob exceeds the limit of ${maxBytes} bytes`));
          return;
        }
        if (!reserve(chunk.length)) {
          callback(new CacheFullError('The memory tier is full of blobs being read'));
          return;
        }
        chunks.push(ownMemory(chunk));
        callback(null, chunk);
      },
    });
    const verifier = new DigestVerifier({
      md5: key,
      size: options.size,
      sha256: options.sha256,
      maxBytes,
    });
    // The verifier's output is what `take` holds already.
    const discard = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    try {
      await pipeline(source, take, verifier, discard, { signal: options.signal });
    } catch (error) {
      this.bytes -= reserved;
      chunks.length = 0;
      throw error;
    } finally {
      if (key !== undefined) this.copying.delete(key);
    }
    return this.keep(chunks, reserved, verifier.result);
  }

  /** Makes the verified `chunks` (whose bytes are reserved) an entry, unless one exists. */
  private keep(chunks: Buffer[], reserved: number, digest: VerifiedDigest | undefined): PutResult {
    if (digest === undefined) throw new Error('The verifier finished without a result');
    const existing = this.touch(digest.md5);
    if (existing !== undefined) {
      this.bytes -= reserved;
      return { info: existing.info, created: false };
    }
    const info: BlobInfo = { key: digest.md5, size: digest.size };
    if (digest.sha256 !== undefined) info.sha256 = digest.sha256;
    // The bytes were reserved as they came: they now belong to the entry.
    const entry: Entry = { info, chunks, storedAt: Date.now(), readers: 0, gone: false };
    this.entries.set(info.key, entry);
    this.newest = entry;
    return { info, created: true };
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.options.maxBytes) return;
      // Evicting a blob being read frees nothing (its reader holds the bytes): keep it.
      if (entry.readers > 0) continue;
      this.remove(key, entry);
      this.evictions += 1;
    }
  }

  delete(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (entry === undefined) return Promise.resolve(false);
    this.remove(key, entry);
    return Promise.resolve(true);
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const entry of [...this.entries.values()]) yield await Promise.resolve(entry.info);
  }

  check(): Promise<void> {
    return Promise.resolve();
  }
}

/** Yields the bytes start..end (inclusive) of a chunked blob without copying whole chunks. */
function* slices(chunks: readonly Buffer[], start: number, end: number): Generator<Buffer> {
  let offset = 0;
  for (const chunk of chunks) {
    const chunkEnd = offset + chunk.length;
    if (chunkEnd > start && offset <= end) {
      yield chunk.subarray(Math.max(0, start - offset), Math.min(chunk.length, end - offset + 1));
    }
    offset = chunkEnd;
    if (offset > end) return;
  }
}
