import { pipeline, type Readable } from 'node:stream';
import type { MemoryLruStore } from '../backends/memory-lru.ts';
import type { LocalTier } from '../local/local-tier.ts';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { asServiceError } from '../redis/errors.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal } from '../redis/journal.ts';
import type { UploadLeases } from '../redis/upload-leases.ts';
import { readCached } from './cached-read.ts';
import { ServiceUnavailableError } from './errors.ts';
import { FillCoordinator } from './fills.ts';
import { WriteBehindPuts } from './write-behind-puts.ts';
import { KeyGuards } from './key-guards.ts';
import { readLocalCopy, readThroughLocal } from './local-reads.ts';
import { findMissing } from './missing.ts';
import {
  servedFromMemory,
  type BlobService,
  type Durability,
  type LocatedBlob,
  type ServedBlob,
  type UploadOptions,
} from './service.ts';
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
  /** Uploads to the durable tier under way; a DELETE waits them out. */
  leases: UploadLeases;
  metrics: Metrics;
  logger: Logger;
  durability: Durability;
  /** Where uploads without a key are spooled while their MD5 is computed. */
  spoolDir: string;
  /** Identifies this process as a fill-lease holder. */
  owner: string;
  fillWaitMs: number;
  fillLeaseMs: number;
  negativeCacheMs: number;
  cachedTtlMs: number;
  /** Optional per-process hot tier in front of Redis for the most read blobs. */
  hot?: MemoryLruStore;
  /** Optional per-process local tier on disk for large blobs, between the hot tier and Redis. */
  local?: LocalTier;
  /**
   * Tells every process (this one included) that a blob was deleted, and resolves once they
   * dropped their in-process copies (`forget`), or gave up waiting for them.
   */
  announceDeletion?: (key: string) => Promise<void>;
}

/**
 * The production tiers: Redis Cluster in front, a durable store (S3) behind. Uploads are
 * acknowledged once in Redis on the master and a replica with a journal entry (WriteBehind)
 * or once the durable store has them (Sync). Misses read through, one fill per key.
 *
 * A DELETE sticks (docs/decisions/0021-delete-sticks.md): it fences Redis, the durable tier
 * and the hot tiers of every process, so no read that starts after its answer finds the
 * blob until it is uploaded again.
 */
export class WriteBehindTiers implements BlobService {
  private readonly options: WriteBehindOptions;
  private readonly fast: RedisFastTier;
  private readonly store: BlobStore;
  private readonly fills: FillCoordinator;
  private readonly puts: WriteBehindPuts;
  /** Reads that may copy into the hot tier; a deletion aborts their copy. */
  private readonly guards = new KeyGuards();

  constructor(options: WriteBehindOptions) {
    this.options = options;
    this.fast = options.fast;
    this.store = options.store;
    this.fills = new FillCoordinator(options);
    this.puts = new WriteBehindPuts(options);
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
    // Entered before Redis is read: a DELETE announced from here on aborts the hot copy.
    const guard = this.guards.enter(key);
    try {
      const { local } = this.options;
      const localCopy =
        local === undefined
          ? null
          : await this.guard('reading a blob', () =>
              readLocalCopy({ ...this.options, local }, key, range, guard),
            );
      if (localCopy !== null) {
        guard.leave();
        metrics.cacheRequests.inc({ result: 'hit' });
        return { ...localCopy, cache: 'hit' };
      }
      const { manifest, generation } = await this.guard('reading a blob', () =>
        this.fast.lookup(key),
      );
      if (manifest !== null) {
        metrics.cacheRequests.inc({ result: 'hit' });
        const throughLocal =
          local !== undefined &&
          range === undefined &&
          !(hot?.admits(manifest.size) ?? false) &&
          local.admits(manifest.size)
            ? readThroughLocal({ ...this.options, local }, manifest, generation, this.guards, guard)
            : null;
        if (throughLocal !== null) {
          guard.leave();
          return { info: infoOf(manifest), stream: throughLocal, cache: 'hit' };
        }
        const stream = readCached(this.options, manifest, range);
        if (hot === undefined || range !== undefined || !hot.admits(manifest.size)) {
          guard.leave();
          return { info: infoOf(manifest), stream, cache: 'hit' };
        }
        return {
          info: infoOf(manifest),
          stream: this.copyToHot(hot, manifest, stream, guard),
          cache: 'hit',
        };
      }
      guard.leave();
    } catch (error) {
      guard.leave();
      throw error;
    }
    return this.openMiss(key, range);
  }

  /** Keeps a verified copy of a small blob in the hot tier on its way out, unless deleted. */
  private copyToHot(
    hot: MemoryLruStore,
    manifest: Manifest,
    stream: Readable,
    guard: ReturnType<KeyGuards['enter']>,
  ): Readable {
    const { key, size, sha256 } = manifest;
    const tee = new Tee(
      (branch) =>
        hot
          .put(branch, { ...blobInfo(key, size, sha256), signal: guard.signal })
          .finally(() => guard.leave()),
      { commitOnEnd: true },
    );
    return pipeline(stream, tee.transform, (error) => {
      if (error) void tee.abort(error);
    });
  }

  private async openMiss(key: string, range?: ByteRange): Promise<ServedBlob | null> {
    const { metrics } = this.options;
    const outcome = await this.guard('reading a blob', () => this.fills.openMiss(key, range));
    metrics.cacheRequests.inc({ result: outcome.kind === 'absent' ? 'absent' : 'miss' });
    switch (outcome.kind) {
      case 'absent':
        return null;
      case 'filled':
        return {
          info: infoOf(outcome.manifest),
          stream: readCached(this.options, outcome.manifest, range),
          cache: 'miss',
        };
      case 'streaming':
        return {
          info: blobInfo(key, outcome.size, outcome.sha256),
          stream: outcome.stream,
          cache: 'miss',
          behindFill: true,
        };
    }
  }

  put(source: Readable, options: UploadOptions): Promise<PutResult> {
    return this.puts.put(source, options);
  }

  /**
   * Removes the blob from every tier. Redis is fenced before and after the durable tier:
   * the first bump of the generation stops uploads and fills that started earlier (and the
   * DELETE waits for uploads still copying to let go), the second drops whatever a fill
   * that started in between published from the still-present object. Then every process
   * drops its hot copy before the DELETE is answered.
   */
  async delete(key: string): Promise<boolean> {
    const inCache = await this.guard('deleting the blob', () => this.fast.delete(key));
    // Uploads under way saw the new generation at their next renewal and stop; one that
    // already put the object removes it again before it lets go of its lease.
    if (
      !(await this.guard('deleting the blob', () => this.options.leases.waitUntilNone(key, 30_000)))
    ) {
      throw new ServiceUnavailableError(
        `An upload of blob ${key} to the durable tier did not stop; retry the DELETE`,
      );
    }
    const inStore = await this.store.delete(key);
    const filledMeanwhile = await this.guard('deleting the blob', async () => {
      const published = await this.fast.delete(key);
      // Fills that started earlier can no longer publish: readers elsewhere stop waiting
      // for them, and a fill that starts now finds the blob gone.
      await this.fast.dropFillLease(key);
      return published;
    });
    await this.announce(key);
    return inCache || inStore || filledMeanwhile;
  }

  private async announce(key: string): Promise<void> {
    const { announceDeletion, logger } = this.options;
    if (announceDeletion === undefined) {
      this.forget(key);
      return;
    }
    await announceDeletion(key).catch((error: unknown) => {
      this.forget(key);
      logger.warn('Failed to announce a deletion; hot tiers expire it by TTL', {
        key,
        error: String(error),
      });
    });
  }

  /** Drops this process's in-process copy of `key` (a DELETE anywhere in the cluster). */
  forget(key: string): void {
    this.guards.markDeleted(key);
    this.fills.forget(key);
    void this.options.hot?.delete(key);
    this.options.local?.forget(key);
  }

  missing(keys: readonly string[]): Promise<string[]> {
    return findMissing(keys, (key) => this.head(key));
  }

  peekInMemory(key: string): ServedBlob | null {
    const hit = this.options.hot?.peek(key) ?? null;
    if (hit === null) return null;
    this.options.metrics.memoryHits.hit();
    return servedFromMemory(hit);
  }

  /**
   * Ready when Redis serves: uploads are acknowledged from Redis and the journal, and what
   * Redis holds is read from it alone. An unreachable S3 is the uploader's to wait out (it
   * retries; the backlog metrics and alerts say so), not a reason to leave the Service:
   * every pod shares the one S3, so all of them would go at once (decision 0061).
   */
  async check(): Promise<void> {
    await this.fast.check();
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
