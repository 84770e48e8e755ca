import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import type { RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal, JournalEntry } from '../redis/journal.ts';
import type { BlobStore } from './store.ts';

export interface UploaderOptions {
  journal: Journal;
  fast: RedisFastTier;
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
  /** This process's consumer name in the journal's group. */
  consumer: string;
  /** Uploads at once. */
  concurrency: number;
  /** Entries idle this long on another consumer are taken over. */
  claimIdleMs: number;
  /** Longest back-off between retries of one entry. */
  retryMaxMs: number;
  /** An entry whose blob was never published after this long is dropped (upload abandoned). */
  abandonAfterMs: number;
  cachedTtlMs: number;
  /** Idle poll interval. @default 200 */
  pollMs?: number;
}

/** The blob is not published yet: its upload may still be streaming. */
class NotYetPublished extends Error {}

/**
 * Drains the write-behind journal into the durable tier. Every data-plane process runs one;
 * they share the work through the consumer group, and take over the entries of a process
 * that died (XAUTOCLAIM). A failed upload is retried with exponential back-off; its blob
 * stays pending (never evicted) until the durable tier has it.
 */
export class Uploader {
  private readonly options: Required<UploaderOptions>;
  private readonly active = new Map<string, Promise<void>>();
  private readonly attempts = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(options: UploaderOptions) {
    this.options = { pollMs: 200, ...options };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops taking entries and waits for uploads under way (they are idempotent if cut). */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    await this.loop;
    await Promise.allSettled(this.active.values());
  }

  /**
   * Uploads one entry's blob now and completes the entry (the Sync path and the workers).
   * Throws when the blob could not be persisted; the entry then stays in the journal.
   */
  async persist(entry: JournalEntry): Promise<void> {
    const { fast, store, journal, metrics } = this.options;
    const manifest = await fast.manifest(entry.key);
    if (manifest === null) {
      if ((await fast.generation(entry.key)) !== entry.generation) {
        // Deleted since the upload began: nothing to persist.
        metrics.uploads.inc({ result: 'deleted' });
        await journal.complete(entry);
        return;
      }
      if (Date.now() - entry.appendedAt < this.options.abandonAfterMs) {
        throw new NotYetPublished(`Blob ${entry.key} is not published yet`);
      }
      metrics.uploads.inc({ result: 'abandoned' });
      await journal.complete(entry);
      return;
    }
    if (manifest.state === 'cached') {
      await journal.complete(entry);
      return;
    }
    const generation = await fast.generation(entry.key);
    const started = Date.now();
    const result = await store.put(fast.read(manifest), {
      key: entry.key,
      size: manifest.size,
      sha256: manifest.sha256,
    });
    // A DELETE that raced this upload must not leave the blob in the durable tier.
    if ((await fast.generation(entry.key)) !== generation) {
      await store.delete(entry.key);
    } else {
      await fast.markCached(manifest, this.options.cachedTtlMs);
    }
    await journal.complete(entry);
    this.attempts.delete(entry.id);
    metrics.uploads.inc({ result: result.created ? 'uploaded' : 'present' });
    metrics.uploadedBytes.inc(result.created ? manifest.size : 0);
    metrics.uploadSeconds.observe((Date.now() - started) / 1000);
  }

  private async run(): Promise<void> {
    const { journal, logger, consumer, concurrency, claimIdleMs } = this.options;
    let lastClaim = 0;
    while (this.running) {
      let found = 0;
      try {
        for (let partition = 0; partition < journal.partitions && this.running; partition++) {
          const room = concurrency - this.active.size;
          if (room <= 0) break;
          const entries = await journal.readNew(partition, consumer, room);
          found += entries.length;
          entries.forEach((entry) => this.dispatch(entry));
        }
        if (Date.now() - lastClaim > claimIdleMs / 2) {
          lastClaim = Date.now();
          for (let partition = 0; partition < journal.partitions && this.running; partition++) {
            const claimed = await journal.claimStale(
              partition,
              consumer,
              claimIdleMs,
              concurrency * 4,
            );
            claimed.forEach((entry) => this.dispatch(entry));
            found += claimed.length;
          }
        }
      } catch (error) {
        logger.warn('Failed to read the journal', { error: String(error) });
        // A wiped (cold-started) Redis lost the streams and their group: make them again.
        if (String(error).includes('NOGROUP')) await journal.ensureGroups().catch(() => undefined);
      }
      if (found === 0 || this.active.size >= concurrency) await this.pause();
    }
  }

  private async pause(): Promise<void> {
    await sleep(this.options.pollMs, undefined, { signal: this.stopping.signal }).catch(
      () => undefined,
    );
  }

  private dispatch(entry: JournalEntry): void {
    if (this.active.has(entry.id)) return;
    const work = this.process(entry).finally(() => this.active.delete(entry.id));
    this.active.set(entry.id, work);
  }

  private async process(entry: JournalEntry): Promise<void> {
    const { metrics, logger, journal, consumer, retryMaxMs } = this.options;
    for (;;) {
      try {
        await this.persist(entry);
        return;
      } catch (error) {
        const attempt = (this.attempts.get(entry.id) ?? 0) + 1;
        this.attempts.set(entry.id, attempt);
        if (!(error instanceof NotYetPublished)) {
          metrics.uploadFailures.inc();
          logger.warn('Failed to upload a blob to the durable tier; will retry', {
            key: entry.key,
            attempt,
            error: String(error),
          });
        }
        if (!this.running) return;
        const backoff = Math.min(retryMaxMs, 250 * 2 ** Math.min(attempt, 16));
        await sleep(backoff * (0.5 + Math.random() / 2), undefined, {
          signal: this.stopping.signal,
        }).catch(() => undefined);
        if (!this.running) return;
        await journal.keep(entry, consumer).catch(() => undefined);
      }
    }
  }
}
