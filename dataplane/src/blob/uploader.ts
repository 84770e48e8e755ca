// Over 400 lines: the journal's uploader keeps its queue, retries, lease and the DELETE races
// of one upload together, because their order is what makes an upload safe to undo.
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { Journal, JournalEntry } from '../redis/journal.ts';
import type { UploadLease, UploadLeases } from '../redis/upload-leases.ts';
import { DigestConflictError } from './errors.ts';
import type { BlobStore } from './store.ts';

export interface UploaderOptions {
  journal: Journal;
  fast: RedisFastTier;
  /** Held while a blob is copied to the durable tier, so a DELETE can wait it out. */
  leases: UploadLeases;
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
  /** How long a published blob may be missing before it is reported lost. @default 5000 */
  lostGraceMs?: number;
  /** Idle poll interval. @default 200 */
  pollMs?: number;
}

/** Stream ids are unique within one partition only. */
function ref(entry: JournalEntry): string {
  return `${entry.partition}/${entry.id}`;
}

/** The entry cannot be settled yet: look again after `delayMs` (no failure, no back-off). */
class NotYet extends Error {
  readonly delayMs: number;
  constructor(message: string, delayMs: number) {
    super(message);
    this.delayMs = delayMs;
  }
}

/**
 * Drains the write-behind journal into the durable tier. Every data-plane process runs one;
 * they share the work through the consumer group, and take over the entries of a process
 * that died (XAUTOCLAIM). An entry waiting to be retried holds no upload slot: failed
 * uploads come back after an exponential back-off, entries whose blob is still streaming in
 * after a short delay, or at once when this process publishes the blob (`nudge`).
 *
 * An entry whose blob has no manifest is settled from what its upload reported (see
 * `Journal.uploadState`): still streaming (look again), never published (dropped at once),
 * or published and since vanished while no DELETE came (lost: logged as an error and
 * counted in `blobcache_journal_lost_total`).
 */
export class Uploader {
  private readonly options: Required<UploaderOptions>;
  private readonly queue: JournalEntry[] = [];
  /** `ref`s of the entries in `queue`: under a backlog a scan of it per entry costs O(n²). */
  private readonly queued = new Set<string>();
  private readonly waiting = new Map<string, { entry: JournalEntry; timer: NodeJS.Timeout }>();
  private readonly active = new Map<string, Promise<void>>();
  private readonly attempts = new Map<string, number>();
  /** When each entry's published blob was first found missing. */
  private readonly missingSince = new Map<string, number>();
  private running = false;
  /** While stopping: until when a failed upload under way is tried again. */
  private retryUntil = 0;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(options: UploaderOptions) {
    this.options = { pollMs: 200, lostGraceMs: 5_000, ...options };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Stops taking entries and waits for uploads under way (they are idempotent if cut). Until
   * `retryUntil` (a time in ms), one that fails is tried again, and entries already taken
   * (queued, or waiting to be retried) are uploaded, rather than left for another process
   * to claim once they are idle: a drained pod hands over only what it could not finish in
   * its grace.
   */
  async stop(retryUntil = 0): Promise<void> {
    this.retryUntil = retryUntil;
    this.running = false;
    const backingOff = [...this.waiting.values()].map(({ entry }) => entry);
    for (const { timer } of this.waiting.values()) clearTimeout(timer);
    this.waiting.clear();
    this.wake?.();
    await this.loop;
    // Entries queued, or waiting out a backoff, are tried now, as many at once as while
    // running.
    const left = [...this.queue.splice(0), ...backingOff];
    this.queued.clear();
    const workers = Array.from({ length: this.options.concurrency }, async () => {
      for (let entry = left.shift(); entry !== undefined; entry = left.shift()) {
        if (Date.now() >= retryUntil) return;
        if (!this.active.has(ref(entry))) await this.attempt(entry);
      }
    });
    await Promise.allSettled([...this.active.values(), ...workers]);
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
    const { fast, journal } = this.options;
    const { manifest, generation } = await fast.lookup(entry.key);
    if (manifest === null) {
      await this.settleUnpublished(entry, generation);
      return;
    }
    this.missingSince.delete(ref(entry));
    if (manifest.state === 'cached') {
      await journal.complete(entry);
      return;
    }
    await this.upload(entry, manifest, generation);
  }

  private async upload(entry: JournalEntry, manifest: Manifest, generation: string): Promise<void> {
    // Under the lease, a DELETE waits for this upload (and stops it) before it removes the
    // durable copy: an object put back by an upload that started earlier never outlives it.
    const lease = await this.options.leases.take(entry.key, generation);
    try {
      if (lease.generation !== generation) {
        await this.settleDeleted(entry, false);
        return;
      }
      await this.copy(entry, manifest, lease);
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  private async copy(entry: JournalEntry, manifest: Manifest, lease: UploadLease): Promise<void> {
    const { fast, store, journal, metrics, logger } = this.options;
    const started = Date.now();
    const damaged = lease.durableCopyDamaged;
    let result;
    try {
      result = await store.put(fast.read(manifest), {
        key: entry.key,
        size: manifest.size,
        sha256: manifest.sha256,
        // The chunks were verified against the key when they were staged.
        sourceVerified: true,
        replaceExisting: damaged,
        reread: () => fast.read(manifest),
        signal: lease.signal,
      });
    } catch (error) {
      if ((await fast.generation(entry.key)) !== lease.generation) {
        await this.settleDeleted(entry, true);
        return;
      }
      if (!(error instanceof DigestConflictError)) throw error;
      // The durable tier holds other content under this key (an MD5 collision), stored
      // first: it stays, and this copy goes, so every tier serves one content.
      metrics.uploads.inc({ result: 'conflict' });
      logger.error('Dropped an upload whose content collides with the stored one', {
        key: entry.key,
        error: error.message,
      });
      await fast.dropCopy(manifest);
      await journal.complete(entry);
      return;
    }
    if (damaged) await fast.forgetDamaged(entry.key).catch(() => undefined);
    const marked = await fast.markCached(manifest, {
      ttlMs: this.options.cachedTtlMs,
      persistToken: entry.token,
      generation: lease.generation,
      // Known there when the copy was found to be the stored content: recorded here too.
      ...(result.info.sha256 === undefined ? {} : { sha256: result.info.sha256 }),
    });
    if (marked === 'deleted') {
      await this.settleDeleted(entry, true);
      return;
    }
    await journal.complete(entry);
    this.attempts.delete(ref(entry));
    metrics.uploads.inc({ result: result.created ? 'uploaded' : 'present' });
    metrics.uploadedBytes.inc(result.created ? manifest.size : 0);
    metrics.uploadSeconds.observe((Date.now() - started) / 1000);
  }

  /** A DELETE came: nothing to persist, and nothing this upload put may stay. */
  private async settleDeleted(entry: JournalEntry, mayHaveStored: boolean): Promise<void> {
    if (mayHaveStored) await this.undoAfterDelete(entry);
    this.options.metrics.uploads.inc({ result: 'deleted' });
    await this.options.journal.complete(entry);
    this.attempts.delete(ref(entry));
  }

  /**
   * A DELETE raced this upload: take the object out of the durable tier again. A newer
   * upload of the key may have been marked cached meanwhile because it found this object
   * there; it is made pending again under an entry of its own, so it is uploaded anew
   * rather than left evictable with nothing behind it.
   */
  private async undoAfterDelete(entry: JournalEntry): Promise<void> {
    const { fast, store, journal } = this.options;
    await store.delete(entry.key);
    const newer = await fast.lookup(entry.key);
    if (newer.manifest === null) return;
    const again = await journal.append(entry.key, newer.generation, { published: true });
    if (await fast.restorePending(entry.key, again.token)) this.nudge(again);
    else await journal.complete(again);
  }

  /** Settles an entry whose blob has no manifest. */
  private async settleUnpublished(entry: JournalEntry, generation: string): Promise<void> {
    const { journal, store, metrics, logger } = this.options;
    const age = Date.now() - entry.appendedAt;
    if (generation !== entry.generation) {
      metrics.uploads.inc({ result: 'deleted' });
      await journal.complete(entry);
      return;
    }
    const state = entry.token === '' ? 'streaming' : await journal.uploadState(entry);
    if (state === 'streaming' && age < this.options.abandonAfterMs) {
      throw new NotYet(`Blob ${entry.key} is not published yet`, 1_000);
    }
    if (state !== 'published') {
      // The upload failed or its process died before publishing: nothing was acknowledged.
      metrics.uploads.inc({ result: 'abandoned' });
      await journal.complete(entry);
      return;
    }
    const since = this.missingSince.get(ref(entry)) ?? Date.now();
    this.missingSince.set(ref(entry), since);
    if ((await store.head(entry.key)) !== null) {
      // Uploaded and evicted before its entry was completed (a crash in between).
      this.missingSince.delete(ref(entry));
      metrics.uploads.inc({ result: 'present' });
      await journal.complete(entry);
      return;
    }
    if (Date.now() - since < this.options.lostGraceMs) {
      throw new NotYet(`Blob ${entry.key} is missing; looking again`, this.options.lostGraceMs);
    }
    this.missingSince.delete(ref(entry));
    metrics.lostBlobs.inc();
    metrics.uploads.inc({ result: 'lost' });
    logger.error(
      'Lost an acknowledged blob: it vanished from Redis before the durable tier had it',
      {
        key: entry.key,
        acknowledgedSecondsAgo: Math.round(age / 1000),
      },
    );
    await journal.complete(entry);
  }

  private forget(entry: JournalEntry): void {
    this.attempts.delete(ref(entry));
    this.missingSince.delete(ref(entry));
  }

  private enqueue(entry: JournalEntry): void {
    if (this.pushQueued(entry)) this.wake?.();
  }

  /** Adds an entry to the queue unless it is there already; true if added. */
  private pushQueued(entry: JournalEntry): boolean {
    const key = ref(entry);
    if (this.queued.has(key)) return false;
    this.queued.add(key);
    this.queue.push(entry);
    return true;
  }

  private shiftQueued(): JournalEntry | undefined {
    const entry = this.queue.shift();
    if (entry !== undefined) this.queued.delete(ref(entry));
    return entry;
  }

  private isKnown(entry: JournalEntry): boolean {
    const key = ref(entry);
    return this.active.has(key) || this.waiting.has(key) || this.queued.has(key);
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    while (this.running) {
      while (this.active.size < this.options.concurrency && this.queue.length > 0) {
        this.startUpload(this.shiftQueued()!);
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
        this.pushQueued(entry);
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
    for (;;) {
      try {
        await this.persist(entry);
        return;
      } catch (error) {
        if (error instanceof NotYet) {
          // Still streaming in (its uploader nudges us if it is this process), or missing
          // within the grace: look again soon.
          this.retryLater(entry, error.delayMs);
          return;
        }
        const attempt = (this.attempts.get(ref(entry)) ?? 0) + 1;
        this.attempts.set(ref(entry), attempt);
        metrics.uploadFailures.inc();
        logger.warn('Failed to upload a blob to the durable tier; will retry', {
          key: entry.key,
          attempt,
          error: String(error),
        });
        const backoff = Math.min(retryMaxMs, 250 * 2 ** Math.min(attempt, 16));
        const delayMs = backoff * (0.5 + Math.random() / 2);
        if (this.running) {
          this.retryLater(entry, delayMs);
          return;
        }
        // Stopping: try again within the shutdown grace, or leave the entry in the journal
        // for another process to claim.
        if (Date.now() + delayMs >= this.retryUntil) return;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private retryLater(entry: JournalEntry, delayMs: number): void {
    if (!this.running) return;
    const timer = setTimeout(() => {
      // Reset the entry's idle time so other processes leave it to us; an entry completed
      // meanwhile (by its own upload, or by another process) is dropped here.
      this.options.journal
        .keep(entry, this.options.consumer)
        .catch(() => true)
        .then((pending) => {
          this.waiting.delete(ref(entry));
          if (pending) this.enqueue(entry);
          else this.forget(entry);
        })
        .catch(() => undefined);
    }, delayMs);
    this.waiting.set(ref(entry), { entry, timer });
  }
}
