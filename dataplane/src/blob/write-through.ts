import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import type { Logger } from 'winston';
import type { MemoryLruStore } from '../backends/memory-lru.ts';
import type { Metrics } from '../metrics.ts';
import { DigestConflictError, DigestMismatchError, SizeMismatchError } from './errors.ts';
import { findMissing } from './missing.ts';
import { KeyGuards, type KeyGuard } from './key-guards.ts';
import {
  servedFromMemory,
  type BlobService,
  type LocatedBlob,
  type ServedBlob,
} from './service.ts';
import type { BlobInfo, BlobStore, ByteRange, PutOptions, PutResult } from './store.ts';
import { Tee } from './tee.ts';

export interface WriteThroughOptions {
  /** The fast tier: a read cache that may drop anything at any time. */
  cache: MemoryLruStore;
  /** The durable tier: what it holds is what is stored. */
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
}

/**
 * The embedded default: uploads are acknowledged once the durable tier (a local directory)
 * has them, and the fast tier (an in-process LRU) is filled on the way in and on misses.
 * With a local disk as the durable tier, write-behind would buy nothing but risk.
 */
export class WriteThroughTiers implements BlobService {
  private readonly cache: MemoryLruStore;
  private readonly store: BlobStore;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly guards = new KeyGuards();

  constructor(options: WriteThroughOptions) {
    this.cache = options.cache;
    this.store = options.store;
    this.metrics = options.metrics;
    this.logger = options.logger;
  }

  async head(key: string): Promise<LocatedBlob | null> {
    const cached = await this.cache.head(key);
    if (cached !== null) return { info: cached, cache: 'hit' };
    const stored = await this.store.head(key);
    return stored === null ? null : { info: stored, cache: 'miss' };
  }

  async open(key: string, range?: ByteRange): Promise<ServedBlob | null> {
    const hit = await this.cache.get(key, range);
    if (hit !== null) {
      this.metrics.cacheRequests.inc({ result: 'hit' });
      return servedFromMemory(hit);
    }
    const read = await this.store.get(key, range);
    if (read === null) {
      this.metrics.cacheRequests.inc({ result: 'absent' });
      return null;
    }
    this.metrics.cacheRequests.inc({ result: 'miss' });
    // A ranged read cannot verify the whole blob, so only whole reads fill the cache; a blob
    // the cache would not admit is streamed as it is, without a fill to verify.
    if (range !== undefined || !this.cache.admits(read.info.size))
      return { ...read, cache: 'miss' };
    return {
      info: read.info,
      stream: this.fillWhileStreaming(read.info, read.stream),
      cache: 'miss',
    };
  }

  /**
   * Copies the durable bytes into the fast tier while they stream to the client. The store
   * verifies them on the way (holding back the last chunk until the digest matched):
   * damaged bytes fail the stream, so the client sees a broken transfer, not a clean end,
   * and the cache never keeps them.
   */
  private fillWhileStreaming(info: BlobInfo, source: Readable): Readable {
    const guard = this.guards.enter(info.key);
    const tee = new Tee(
      (branch) => this.cache.put(branch, { key: info.key, size: info.size, sha256: info.sha256 }),
      { commitOnEnd: true },
    );
    // The callback fires once every byte went through the tee (or on the first error,
    // including the reader going away), which is when the side copy is settled.
    return pipeline(source, tee.transform, (error) => {
      this.settleFill(info.key, tee, guard, error ?? undefined).catch((failure: unknown) =>
        this.logger.error('Failed to settle a fill', { key: info.key, error: String(failure) }),
      );
    });
  }

  private async settleFill(
    key: string,
    tee: Tee<PutResult>,
    guard: KeyGuard,
    error: Error | undefined,
  ): Promise<void> {
    try {
      if (error !== undefined) {
        await tee.abort(error);
        if (error instanceof DigestMismatchError || error instanceof SizeMismatchError) {
          this.metrics.fills.inc({ result: 'corrupt' });
          this.logger.error('Rejected damaged bytes from the durable tier', {
            key,
            error: error.message,
          });
        }
        return;
      }
      const outcome = await tee.commit();
      if (outcome instanceof Error) {
        this.metrics.fills.inc({ result: 'skipped' });
      } else if (guard.deleted) {
        await this.cache.delete(key);
        this.metrics.fills.inc({ result: 'deleted' });
      } else {
        this.metrics.fills.inc({ result: 'filled' });
      }
    } finally {
      guard.leave();
    }
  }

  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    if (options.key !== undefined) {
      // Only a copy known intact lets us skip the body: a damaged one must be replaced by
      // these bytes (the store verifies and repairs it while publishing).
      const existing = await (this.store.headIntact?.(options.key) ?? this.store.head(options.key));
      if (existing !== null) {
        this.settleWithoutBody(existing, options);
        if (options.sha256 === undefined || existing.sha256 === options.sha256) {
          // Already stored and immutable: no need to read the body at all.
          return { info: existing, created: false };
        }
        // The stored copy's SHA-256 is not known yet: read the body, the store compares.
      }
    }
    const guard = options.key === undefined ? undefined : this.guards.enter(options.key);
    const tee = new Tee((branch) =>
      this.cache.put(branch, { key: options.key, size: options.size, sha256: options.sha256 }),
    );
    try {
      let result: PutResult;
      try {
        // pipeline() carries a failing source (a client gone mid-upload) into the tee and so
        // into the store's put; .pipe() would leave the put waiting forever.
        const upstream = pipeline(source, tee.transform, () => undefined);
        result = await this.store.put(upstream, options);
      } catch (error) {
        await tee.abort(error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      // Only bytes that are what the store holds may be cached: an upload answered
      // "already stored" may carry other bytes with the same MD5 (see decision 0017).
      if (result.created) await tee.commit();
      else await tee.abort(new Error('Already stored; the stored copy is the one to cache'));
      if (guard?.deleted === true) await this.removeEverywhere(result.info.key);
      return result;
    } finally {
      guard?.leave();
    }
  }

  /** Refuses at once an upload claiming a SHA-256 other than the stored copy's. */
  private settleWithoutBody(existing: BlobInfo, options: PutOptions): void {
    const claimed = options.sha256;
    if (claimed !== undefined && existing.sha256 !== undefined && existing.sha256 !== claimed) {
      throw new DigestConflictError(
        `Blob ${existing.key} is stored with SHA-256 ${existing.sha256}; this upload has ${claimed} (an MD5 collision)`,
      );
    }
  }

  async delete(key: string): Promise<boolean> {
    this.guards.markDeleted(key);
    return this.removeEverywhere(key);
  }

  private async removeEverywhere(key: string): Promise<boolean> {
    const [inCache, inStore] = await Promise.all([this.cache.delete(key), this.store.delete(key)]);
    return inCache || inStore;
  }

  missing(keys: readonly string[]): Promise<string[]> {
    return findMissing(keys, (key) => this.store.head(key));
  }

  peekInMemory(key: string): ServedBlob | null {
    const hit = this.cache?.peek(key) ?? null;
    if (hit === null) return null;
    this.metrics.memoryHits.hit();
    return servedFromMemory(hit);
  }

  async check(): Promise<void> {
    await Promise.all([this.cache.check(), this.store.check()]);
  }
}
