import { pipeline, type Readable } from 'node:stream';
import type { MemoryLruStore } from '../backends/memory-lru.ts';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { asServiceError } from '../redis/errors.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal, JournalEntry } from '../redis/journal.ts';
import type { UploadLeases } from '../redis/upload-leases.ts';
import { readCached } from './cached-read.ts';
import { DigestConflictError, ServiceUnavailableError } from './errors.ts';
import { FillCoordinator } from './fills.ts';
import { KeyGuards } from './key-guards.ts';
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
import { contentSha256, RangeWindow } from './verified-read.ts';

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
  negativeCacheMs: number;
  cachedTtlMs: number;
  /** Optional per-process hot tier in front of Redis for the most read blobs. */
  hot?: MemoryLruStore;
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
  /** Reads that may copy into the hot tier; a deletion aborts their copy. */
  private readonly guards = new KeyGuards();

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
    // Entered before Redis is read: a DELETE announced from here on aborts the hot copy.
    const guard = this.guards.enter(key);
    try {
      const manifest = await this.guard('reading a blob', () => this.fast.manifest(key));
      if (manifest !== null) {
        metrics.cacheRequests.inc({ result: 'hit' });
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
    const outcome = await this.fills.openMiss(key);
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
          // A range is cut from the whole verified blob, its end held back until it matched.
          stream:
            range === undefined
              ? outcome.stream
              : pipeline(outcome.stream, new RangeWindow(range), () => undefined),
          cache: 'miss',
        };
    }
  }

  async put(source: Readable, options: UploadOptions): Promise<PutResult> {
    if (options.key === undefined) return this.putUnkeyed(source, options);
    const key = options.key;
    const durability = options.durability ?? this.options.durability;
    // The generation comes with the manifest: a DELETE from here on makes the upload stale.
    const { manifest: existing, generation } = await this.guard('checking for the blob', () =>
      this.fast.lookup(key),
    );
    if (existing !== null) {
      const answer = await this.putExisting(existing, options, durability);
      if (answer !== null) return answer;
    }
    if (options.sha256 !== undefined) {
      const inStore = await this.durableCopy(key, options.sha256);
      if (inStore !== null) return inStore;
    }
    return this.guard('storing the blob', async () => {
      // The entry comes first: a published blob always has one, even if we crash next.
      const entry = await this.options.journal.append(key, generation);
      const { outcome, size, sha256 } = await this.stageAndPublish(entry, source, options);
      if (outcome === 'chunk-lost') {
        throw new ServiceUnavailableError(
          `Part of blob ${key} was evicted before it was published; retry`,
        );
      }
      await this.fast.confirmReplicated(key, size);
      if (outcome === 'published' && durability === 'Sync') await this.persistEntry(entry);
      else if (outcome === 'exists' && durability === 'Sync') await this.persistNow(key);
      else if (outcome === 'published') this.options.uploader.nudge(entry);
      return { info: blobInfo(key, size, sha256), created: outcome !== 'exists' };
    });
  }

  /**
   * Stages and publishes an upload under its journal entry, keeping the entry's streaming
   * marker alive meanwhile. Entries of uploads that end without publishing are completed
   * at once, so they never linger as backlog.
   */
  private async stageAndPublish(entry: JournalEntry, source: Readable, options: UploadOptions) {
    const { journal } = this.options;
    const keepAlive = setInterval(
      () => void journal.keepStreaming(entry).catch(() => undefined),
      journal.streamingMarkerMs / 3,
    );
    try {
      const staged = await this.fast.stage(entry.key, source, options);
      const outcome = await this.fast.publish(staged, {
        generation: entry.generation,
        state: 'pending',
        ttlMs: 0,
        persistToken: entry.token,
      });
      clearInterval(keepAlive);
      if (outcome === 'published') await journal.markPublished(entry);
      else await journal.complete(entry).catch(() => undefined);
      return { outcome, size: staged.size, sha256: staged.sha256 };
    } catch (error) {
      clearInterval(keepAlive);
      await journal.complete(entry).catch(() => undefined);
      throw error;
    }
  }

  /**
   * An upload of a key already stored: answered without reading the body once the blob is
   * as durable as asked, unless it claims other content (409), following
   * docs/decisions/0017-md5-collisions-one-key-one-content.md. Null when the stored copy
   * turned out damaged (it is dropped, and the upload stores its bytes).
   */
  private async putExisting(
    existing: Manifest,
    options: UploadOptions,
    durability: Durability,
  ): Promise<PutResult | null> {
    const { key, size } = existing;
    let stored = existing.sha256;
    if (options.sha256 !== undefined && stored === undefined) {
      // Identical bytes are never a conflict: hash the stored copy to find out.
      const computed = await this.guard('comparing contents', () =>
        contentSha256(this.fast.read(existing), { key, size }),
      );
      if (computed === null) {
        await this.fast.dropCopy(existing);
        return null;
      }
      stored = computed;
      await this.fast.recordSha256(existing, computed).catch(() => undefined);
    }
    if (options.sha256 !== undefined && stored !== options.sha256) {
      throw new DigestConflictError(
        `Blob ${key} is stored with other content (SHA-256 ${stored}); this upload claims ${options.sha256}`,
      );
    }
    // A cached blob is in S3 already; only a pending one needs its replica confirmed.
    if (existing.state === 'pending') {
      await this.guard('confirming replication', () => this.fast.confirmReplicated(key, size));
      if (durability === 'Sync') await this.persistNow(key);
    }
    return { info: blobInfo(key, size, stored), created: false };
  }

  /**
   * An upload claiming a SHA-256 of a key Redis does not hold: if the durable tier holds
   * the key, it is the stored content (200, or 409 for other content). A damaged or
   * unreachable durable copy lets the upload go on (it repairs the copy; the uploader
   * checks again when S3 is back).
   */
  private async durableCopy(key: string, sha256: string): Promise<PutResult | null> {
    try {
      const info = await this.store.head(key);
      if (info === null) return null;
      const stored =
        info.sha256 ??
        (await this.store
          .get(key)
          .then((read) =>
            read === null ? null : contentSha256(read.stream, { key, size: info.size }),
          ));
      if (stored === null) return null;
      if (stored !== sha256) {
        throw new DigestConflictError(
          `Blob ${key} is stored with other content (SHA-256 ${stored}); this upload claims ${sha256}`,
        );
      }
      return { info: blobInfo(key, info.size, stored), created: false };
    } catch (error) {
      if (error instanceof DigestConflictError) throw error;
      this.options.logger.debug('Could not compare with the durable copy; uploading', {
        key,
        error: String(error),
      });
      return null;
    }
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

  /** Persists an already published blob now, under an entry of its own. */
  private async persistNow(key: string): Promise<void> {
    const generation = await this.fast.generation(key);
    await this.persistEntry(
      await this.options.journal.append(key, generation, { published: true }),
    );
  }

  private async persistEntry(entry: JournalEntry): Promise<void> {
    try {
      await this.options.uploader.persist(entry);
    } catch (error) {
      throw new ServiceUnavailableError(
        `Blob ${entry.key} is cached but the durable tier did not take it yet; it will be retried`,
        { cause: error },
      );
    }
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
    const filledMeanwhile = await this.guard('deleting the blob', () => this.fast.delete(key));
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
    void this.options.hot?.delete(key);
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
