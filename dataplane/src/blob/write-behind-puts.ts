import type { Readable } from 'node:stream';
import type { Logger } from 'winston';
import { asServiceError } from '../redis/errors.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal, JournalEntry } from '../redis/journal.ts';
import { DigestConflictError, ServiceUnavailableError } from './errors.ts';
import type { Durability, UploadOptions } from './service.ts';
import { spoolToDisk } from './spool.ts';
import { blobInfo, type BlobStore, type PutResult } from './store.ts';
import type { Uploader } from './uploader.ts';
import { contentSha256 } from './verified-read.ts';

export interface WriteBehindPutOptions {
  fast: RedisFastTier;
  store: BlobStore;
  journal: Journal;
  uploader: Uploader;
  logger: Logger;
  durability: Durability;
  /** Where uploads without a key are spooled while their MD5 is computed. */
  spoolDir: string;
}

/**
 * Uploads on the production tiers: acknowledged once in Redis on the master and a replica
 * with a journal entry (WriteBehind) or once the durable store has them too (Sync).
 * The entry comes first (0007), the blob is published under the generation read with the
 * lookup (0008), and a key holds one content (0017).
 */
export class WriteBehindPuts {
  private readonly options: WriteBehindPutOptions;
  private readonly fast: RedisFastTier;
  private readonly store: BlobStore;

  constructor(options: WriteBehindPutOptions) {
    this.options = options;
    this.fast = options.fast;
    this.store = options.store;
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
      const { outcome, size, sha256, marked, replicated } = await this.stageAndPublish(
        entry,
        source,
        options,
      );
      if (outcome === 'chunk-lost') {
        await marked;
        throw new ServiceUnavailableError(
          `Part of blob ${key} was evicted before it was published; retry`,
        );
      }
      await Promise.all([replicated, marked]);
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
      // Marking the entry published runs while the replica confirms the blob: it starts
      // once the publish script's reply is in, the replica wait being in flight behind it.
      let marked: Promise<void> | undefined;
      const markPublished = (): void => {
        marked ??= journal.markPublished(entry);
        marked.catch(() => undefined); // Awaited by the caller unless the upload failed.
      };
      const { outcome, replicated } = await this.fast.publishReplicated(staged, {
        generation: entry.generation,
        state: 'pending',
        persistToken: entry.token,
        onPublished: markPublished,
      });
      clearInterval(keepAlive);
      if (outcome === 'published') markPublished();
      else marked = journal.complete(entry).catch(() => undefined);
      return { outcome, size: staged.size, sha256: staged.sha256, marked, replicated };
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

  /** Runs a Redis operation, turning passing Redis trouble into a 503. */
  private async guard<T>(doing: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw asServiceError(error, doing);
    }
  }
}
