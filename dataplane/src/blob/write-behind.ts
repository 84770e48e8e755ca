import { pipeline, Readable } from 'node:stream';
import type { MemoryLruStore } from '../backends/memory-lru.ts';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { asServiceError, ChunkMissingError } from '../redis/errors.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal } from '../redis/journal.ts';
import { DigestConflictError, ServiceUnavailableError } from './errors.ts';
import { FillCoordinator } from './fills.ts';
import { findMissing } from './missing.ts';
import {
  servedFromMemory,
  type BlobService,
  type Durability,
  type LocatedBlob,
  type ServedBlob,
  type UploadOptions,
} from './service.ts';
import { spoolToDisk } from './spool.ts';
import { Tee } from './tee.ts';
import {
  blobInfo,
  type BlobInfo,
  type BlobStore,
  type ByteRange,
  type PutResult,
} from './store.ts';
import type { Uploader } from './uploader.ts';

export interface WriteBehindOptions {
  fast: RedisFastTier;
  store: BlobStore;
  journal: Journal;
  uploader: Uploader;
  metrics: Metrics;
  logger: Logger;
  durability: Durability;
  /** Where uploads without a key are spooled while their MD5 is computed. */
  spoolDir: string;
  /** Identifies this process as a fill-lease holder. */
  owner: string;
  fillWaitMs: number;
  negativeCacheMs: number;
  cachedTtlMs: number;
  /** Optional per-process hot tier in front of Redis for the most read blobs. */
  hot?: MemoryLruStore;
  /** Tells every process (including this one) that a blob was deleted. */
  announceDeletion?: (key: string) => Promise<void>;
}

/**
 * The production tiers: Redis Cluster in front, a durable store (S3) behind. Uploads are
 * acknowledged once in Redis on the master and a replica with a journal entry (WriteBehind)
 * or once the durable store has them (Sync). Misses read through, one fill per key.
 */
export class WriteBehindTiers implements BlobService {
  private readonly options: WriteBehindOptions;
  private readonly fast: RedisFastTier;
  private readonly store: BlobStore;
  private readonly fills: FillCoordinator;

  constructor(options: WriteBehindOptions) {
    this.options = options;
    this.fast = options.fast;
    this.store = options.store;
    this.fills = new FillCoordinator(options);
  }

  async head(key: string): Promise<LocatedBlob | null> {
    const hot = await this.options.hot?.head(key);
    if (hot !== undefined && hot !== null) return { info: hot, cache: 'hit' };
    const manifest = await this.guard('looking a blob up', () => this.fast.manifest(key));
    if (manifest !== null) return { info: infoOf(manifest), cache: 'hit' };
    if (await this.fast.isKnownAbsent(key)) return null;
    const stored = await this.store.head(key);
    if (stored === null) await this.fast.rememberAbsent(key, this.options.negativeCacheMs);
    return stored === null ? null : { info: stored, cache: 'miss' };
  }

  async open(key: string, range?: ByteRange): Promise<ServedBlob | null> {
    const { metrics, hot } = this.options;
    const hotHit = await hot?.get(key, range);
    if (hotHit !== undefined && hotHit !== null) {
      metrics.cacheRequests.inc({ result: 'hit' });
      return servedFromMemory(hotHit);
    }
    const manifest = await this.guard('reading a blob', () => this.fast.manifest(key));
    if (manifest !== null) {
      metrics.cacheRequests.inc({ result: 'hit' });
      const stream = this.readWithFallback(manifest, range);
      if (hot === undefined || range !== undefined || !hot.admits(manifest.size)) {
        return { info: infoOf(manifest), stream, cache: 'hit' };
      }
      // Small enough for the hot tier: keep a verified copy in process on the way out.
      const tee = new Tee((branch) => hot.put(branch, { key, size: manifest.size }), {
        commitOnEnd: true,
      });
      return {
        info: infoOf(manifest),
        stream: pipeline(stream, tee.transform, (error) => {
          if (error) void tee.abort(error);
        }),
        cache: 'hit',
      };
    }
    if (range !== undefined) {
      // A range cannot be verified on its own; serve it from the durable tier and leave
      // filling to whole reads.
      const read = await this.store.get(key, range);
      metrics.cacheRequests.inc({ result: read === null ? 'absent' : 'miss' });
      return read === null ? null : { ...read, cache: 'miss' };
    }
    const outcome = await this.fills.openMiss(key);
    metrics.cacheRequests.inc({ result: outcome.kind === 'absent' ? 'absent' : 'miss' });
    switch (outcome.kind) {
      case 'absent':
        return null;
      case 'filled':
        return {
          info: infoOf(outcome.manifest),
          stream: this.readWithFallback(outcome.manifest),
          cache: 'miss',
        };
      case 'streaming':
        return {
          info: blobInfo(key, outcome.size, outcome.sha256),
          stream: outcome.stream,
          cache: 'miss',
        };
    }
  }

  /**
   * Streams from Redis; if a chunk turns out to be gone (evicted, or lost in a failover),
   * continues from the durable tier at the same offset, so the client never gets a partial
   * blob, and forgets the broken copy so the next read fills it again.
   */
  private readWithFallback(manifest: Manifest, range?: ByteRange): Readable {
    const { fast, store } = this;
    const { metrics, logger } = this.options;
    const start = range?.start ?? 0;
    const end = range?.end ?? manifest.size - 1;
    async function* bytes(): AsyncGenerator<Buffer> {
      let offset = start;
      try {
        for await (const chunk of fast.read(manifest, range) as AsyncIterable<Buffer>) {
          offset += chunk.length;
          yield chunk;
        }
        return;
      } catch (error) {
        if (!(error instanceof ChunkMissingError)) throw error;
        metrics.fills.inc({ result: 'chunk-missing' });
        logger.warn('Found a cached blob incomplete; continuing from the durable tier', {
          key: manifest.key,
          offset,
        });
      }
      if (manifest.state === 'cached') await fast.delete(manifest.key).catch(() => undefined);
      const rest = await store.get(manifest.key, { start: offset, end });
      if (rest === null) throw new Error(`Blob ${manifest.key} is in neither tier any more`);
      yield* rest.stream as AsyncIterable<Buffer>;
    }
    return Readable.from(bytes(), { objectMode: false });
  }

  async put(source: Readable, options: UploadOptions): Promise<PutResult> {
    if (options.key === undefined) return this.putUnkeyed(source, options);
    const key = options.key;
    const durability = options.durability ?? this.options.durability;
    // The generation comes with the manifest: a DELETE from here on makes the upload stale.
    const { manifest: existing, generation } = await this.guard('checking for the blob', () =>
      this.fast.lookup(key),
    );
    if (existing !== null && (options.sha256 === undefined || existing.sha256 === options.sha256)) {
      // Already stored: answer without reading the body, once it is as durable as asked. A
      // cached blob is in S3 already; only a pending one needs its replica confirmed.
      if (existing.state === 'pending') {
        await this.guard('confirming replication', () =>
          this.fast.confirmReplicated(key, existing.size),
        );
        if (durability === 'Sync') await this.persistNow(key);
      }
      return { info: infoOf(existing), created: false };
    }
    if (existing !== null) {
      throw new DigestConflictError(
        `Blob ${key} is stored with SHA-256 ${existing.sha256 ?? '(none)'}; this upload claims ${options.sha256}`,
      );
    }
    return this.guard('storing the blob', async () => {
      // The entry comes first: a published blob always has one, even if we crash next.
      const entry = await this.options.journal.append(key, generation);
      let staged;
      try {
        staged = await this.fast.stage(key, source, options);
      } catch (error) {
        await this.options.journal.complete(entry).catch(() => undefined);
        throw error;
      }
      const outcome = await this.fast.publish(staged, { generation, state: 'pending', ttlMs: 0 });
      if (outcome === 'chunk-lost') {
        throw new ServiceUnavailableError(
          `Part of blob ${key} was evicted before it was published; retry`,
        );
      }
      if (outcome === 'deleted') await this.options.journal.complete(entry).catch(() => undefined);
      await this.fast.confirmReplicated(key, staged.size);
      if (outcome !== 'deleted' && durability === 'Sync') await this.persistEntry(entry);
      else if (outcome === 'published') this.options.uploader.nudge(entry);
      return { info: blobInfo(key, staged.size, staged.sha256), created: outcome !== 'exists' };
    });
  }

  private async putUnkeyed(source: Readable, options: UploadOptions): Promise<PutResult> {
    const spooled = await spoolToDisk(source, this.options.spoolDir, {
      size: options.size,
      sha256: options.sha256,
      maxBytes: options.maxBytes,
    });
    try {
      return await this.put(spooled.open(), { ...options, key: spooled.md5, size: spooled.size });
    } finally {
      await spooled.remove();
    }
  }

  private async persistNow(key: string): Promise<void> {
    const generation = await this.fast.generation(key);
    await this.persistEntry(await this.options.journal.append(key, generation));
  }

  private async persistEntry(entry: Parameters<Uploader['persist']>[0]): Promise<void> {
    try {
      await this.options.uploader.persist(entry);
    } catch (error) {
      throw new ServiceUnavailableError(
        `Blob ${entry.key} is cached but the durable tier did not take it yet; it will be retried`,
        { cause: error },
      );
    }
  }

  async delete(key: string): Promise<boolean> {
    await this.options.hot?.delete(key);
    await this.options.announceDeletion?.(key).catch((error: unknown) =>
      this.options.logger.warn('Failed to announce a deletion; hot tiers expire it by TTL', {
        key,
        error: String(error),
      }),
    );
    const inCache = await this.guard('deleting the blob', () => this.fast.delete(key));
    const inStore = await this.store.delete(key);
    return inCache || inStore;
  }

  missing(keys: readonly string[]): Promise<string[]> {
    return findMissing(keys, (key) => this.head(key));
  }

  peekInMemory(key: string): ServedBlob | null {
    const hit = this.options.hot?.peek(key) ?? null;
    if (hit === null) return null;
    this.options.metrics.cacheRequests.inc({ result: 'hit' });
    return servedFromMemory(hit);
  }

  async check(): Promise<void> {
    await Promise.all([this.fast.check(), this.store.check()]);
  }

  /** Runs a Redis operation, turning passing Redis trouble into a 503. */
  private async guard<T>(doing: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw asServiceError(error, doing);
    }
  }
}

function infoOf(manifest: Manifest): BlobInfo {
  return blobInfo(manifest.key, manifest.size, manifest.sha256);
}
