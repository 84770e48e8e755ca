import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type {
  BlobInfo,
  BlobRead,
  BlobStore,
  ByteRange,
  PutOptions,
  PutResult,
} from '../blob/store.ts';
import { DigestVerifier } from '../blob/verifier.ts';

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
  chunks: Buffer[];
  storedAt: number;
}

/**
 * A size-bounded, in-process LRU of whole blobs: the embedded fast tier and, later, the
 * per-pod hot tier. Blobs are kept as the chunks they arrived in (no concatenation, no copy)
 * and only after their MD5 was verified. Capacity is bounded in bytes, so the process's
 * memory stays bounded however large the blobs passing through are.
 */
export class MemoryLruStore implements BlobStore {
  private readonly entries = new Map<string, Entry>();
  private readonly options: MemoryLruOptions;
  private bytes = 0;
  private evictions = 0;

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
    this.bytes -= entry.info.size;
  }

  private touch(key: string): Entry | undefined {
    const entry = this.live(key);
    if (entry !== undefined) {
      // Map keeps insertion order: re-inserting moves the entry to the most recent end.
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  head(key: string): Promise<BlobInfo | null> {
    return Promise.resolve(this.live(key)?.info ?? null);
  }

  get(key: string, range?: ByteRange): Promise<BlobRead | null> {
    return Promise.resolve(this.peek(key, range));
  }

  /** `get` without the promise: the bytes are in memory already. */
  peek(key: string, range?: ByteRange): BlobRead | null {
    const entry = this.touch(key);
    if (entry === undefined) return null;
    const start = range?.start ?? 0;
    const end = range?.end ?? entry.info.size - 1;
    const chunks = [...slices(entry.chunks, start, end)];
    return {
      info: entry.info,
      chunks,
      // Made on first use: the HTTP layer writes `chunks` directly and never asks.
      get stream() {
        return Readable.from(chunks, { objectMode: false });
      },
    };
  }

  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    const maxBytes = Math.min(options.maxBytes ?? Infinity, this.options.maxEntryBytes);
    const verifier = new DigestVerifier({
      md5: options.key,
      size: options.size,
      sha256: options.sha256,
      maxBytes,
    });
    const chunks: Buffer[] = [];
    const collect = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    await pipeline(source, verifier, collect, { signal: options.signal });
    const digest = verifier.result;
    if (digest === undefined) throw new Error('The verifier finished without a result');
    const existing = this.touch(digest.md5);
    if (existing !== undefined) return { info: existing.info, created: false };
    const info: BlobInfo = { key: digest.md5, size: digest.size };
    if (digest.sha256 !== undefined) info.sha256 = digest.sha256;
    this.entries.set(info.key, { info, chunks, storedAt: Date.now() });
    this.bytes += info.size;
    this.evict();
    return { info, created: true };
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.options.maxBytes) return;
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
