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

/** Stream ids are unique within one partition only. */
function ref(entry: JournalEntry): string {
  return `${entry.partition}/${entry.id}`;
}

/** The blob is not published yet: its upload may still be streaming. */
class NotYetPublished extends Error {}

/**
 * Drains the write-behind journal into the durable tier. Every data-plane process runs one;
 * they share the work through the consumer group, and take over the entries of a process
 * that died (XAUTOCLAIM). An entry waiting to be retried holds no upload slot: failed
 * uploads come back after an exponential back-off, entries whose blob is still streaming in
 * after a short delay, or at once when this process publishes the blob (`nudge`).
 */
export class Uploader {
  private readonly options: Required<UploaderOptions>;
  private readonly queue: JournalEntry[] = [];
  private readonly waiting = new Map<string, { entry: JournalEntry; timer: NodeJS.Timeout }>();
  private readonly active = new Map<string, Promise<void>>();
  private readonly attempts = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

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
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.wake?.();
    await this.loop;
    await Promise.allSettled(this.active.values());
  }

  /** The blob of `entry` was just published here: upload it now rather than on the next poll. */
  nudge(entry: JournalEntry): void {
    if (!this.running || this.active.has(ref(entry))) return;
    const waiting = this.waiting.get(ref(entry));
    if (waiting !== undefined) {
      clearTimeout(waiting.timer);
      this.waiting.delete(ref(entry));
    }
    this.enqueue(entry);
  }

  /**
   * Uploads one entry's blob now and completes the entry (the Sync path and the workers).
   * Throws when the blob could not be persisted; the entry then stays in the journal.
   */
  async persist(entry: JournalEntry): Promise<void> {
    const { fast, store, journal, metrics } = this.options;
    const { manifest, generation } = await fast.lookup(entry.key);
    if (manifest === null) {
      if (generation !== entry.generation) {
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
    const started = Date.now();
    const result = await store.put(fast.read(manifest), {
      key: entry.key,
      size: manifest.size,
      sha256: manifest.sha256,
      // The chunks were verified against the key when they were staged.
      sourceVerified: true,
    });
    // A DELETE that raced this upload must not leave the blob in the durable tier.
    if ((await fast.generation(entry.key)) !== generation) {
      await store.delete(entry.key);
    } else {
      await fast.markCached(manifest, this.options.cachedTtlMs);
    }
    await journal.complete(entry);
    this.attempts.delete(ref(entry));
    metrics.uploads.inc({ result: result.created ? 'uploaded' : 'present' });
    metrics.uploadedBytes.inc(result.created ? manifest.size : 0);
    metrics.uploadSeconds.observe((Date.now() - started) / 1000);
  }

  private enqueue(entry: JournalEntry): void {
    if (this.queue.some((queued) => ref(queued) === ref(entry))) return;
    this.queue.push(entry);
    this.wake?.();
  }

  private isKnown(entry: JournalEntry): boolean {
    return (
      this.active.has(ref(entry)) ||
      this.waiting.has(ref(entry)) ||
      this.queue.some((q) => ref(q) === ref(entry))
    );
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    while (this.running) {
      while (this.active.size < this.options.concurrency && this.queue.length > 0) {
        this.startUpload(this.queue.shift()!);
      }
      let found = 0;
      if (this.queue.length === 0 && this.active.size < this.options.concurrency) {
        try {
          found = await this.fetch(Date.now() - lastClaim > this.options.claimIdleMs / 2);
          if (found >= 0 && Date.now() - lastClaim > this.options.claimIdleMs / 2)
            lastClaim = Date.now();
        } catch (error) {
          this.options.logger.warn('Failed to read the journal', { error: String(error) });
          // A wiped (cold-started) Redis lost the streams and their group: make them again.
          if (String(error).includes('NOGROUP'))
            await this.options.journal.ensureGroups().catch(() => undefined);
        }
      }
      if (found === 0) await this.nap();
    }
  }

  /** Reads new entries (and, when `claim`, stale ones of silent consumers) into the queue. */
  private async fetch(claim: boolean): Promise<number> {
    const { journal, consumer, concurrency, claimIdleMs } = this.options;
    let found = 0;
    for (let partition = 0; partition < journal.partitions && this.running; partition++) {
      const fresh = await journal.readNew(partition, consumer, concurrency);
      const stale = claim
        ? await journal.claimStale(partition, consumer, claimIdleMs, concurrency * 4)
        : [];
      for (const entry of [...fresh, ...stale]) {
        if (this.isKnown(entry)) continue;
        this.queue.push(entry);
        found += 1;
      }
    }
    return found;
  }

  /** Sleeps until there is work (an enqueue or a finished upload) or the poll interval passes. */
  private async nap(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.pollMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private startUpload(entry: JournalEntry): void {
    const work = this.attempt(entry).finally(() => {
      this.active.delete(ref(entry));
      this.wake?.();
    });
    this.active.set(ref(entry), work);
  }

  private async attempt(entry: JournalEntry): Promise<void> {
    const { metrics, logger, retryMaxMs } = this.options;
    try {
      await this.persist(entry);
    } catch (error) {
      const attempt = (this.attempts.get(ref(entry)) ?? 0) + 1;
      this.attempts.set(ref(entry), attempt);
      if (error instanceof NotYetPublished) {
        // Still streaming in: look again soon (its uploader nudges us if it is this process).
        this.retryLater(entry, Math.min(1_000, 100 * attempt));
        return;
      }
      metrics.uploadFailures.inc();
      logger.warn('Failed to upload a blob to the durable tier; will retry', {
        key: entry.key,
        attempt,
        error: String(error),
      });
      const backoff = Math.min(retryMaxMs, 250 * 2 ** Math.min(attempt, 16));
      this.retryLater(entry, backoff * (0.5 + Math.random() / 2));
    }
  }

  private retryLater(entry: JournalEntry, delayMs: number): void {
    if (!this.running) return;
    const timer = setTimeout(() => {
      this.waiting.delete(ref(entry));
      // Reset the entry's idle time so other processes leave it to us.
      this.options.journal.keep(entry, this.options.consumer).catch(() => undefined);
      this.enqueue(entry);
    }, delayMs);
    this.waiting.set(ref(entry), { entry, timer });
  }
}
