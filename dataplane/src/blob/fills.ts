import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import type { Manifest, PublishOutcome, RedisFastTier } from '../redis/fast-tier.ts';
import { DigestMismatchError, SizeMismatchError } from './errors.ts';
import type { BlobStore } from './store.ts';
import { Tee } from './tee.ts';
import { verifiedRead } from './verified-read.ts';

export interface FillOptions {
  fast: RedisFastTier;
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
  /** Identifies this process as a fill-lease holder. */
  owner: string;
  /** How long readers wait for another fill before reading the durable tier themselves. */
  fillWaitMs: number;
  negativeCacheMs: number;
  cachedTtlMs: number;
}

/**
 * What a reader of a blob absent from Redis gets. A `streaming` stream is the whole blob,
 * verified against its key as it passes, its last piece held back until it matched: it
 * fails rather than ends when the bytes are damaged.
 */
export type MissOutcome =
  | { kind: 'absent' }
  | { kind: 'filled'; manifest: Manifest }
  | { kind: 'streaming'; stream: Readable; size: number; sha256?: string };

/**
 * Fills Redis from the durable tier, once per key: concurrent readers in this process wait
 * for the one fill under way (singleflight), readers in other processes wait while the
 * fill lease in Redis is held. The filler streams to its client and into Redis at once.
 *
 * Two fences keep it honest: the fill publishes only if no DELETE came since it read the
 * generation (checked by the publish script, atomically), and every byte it or a reader
 * that gave up waiting streams from the durable tier is verified against the key.
 */
export class FillCoordinator {
  private readonly options: FillOptions;
  /** Fills under way in this process: what their waiters wait on, and how to release them. */
  private fillCount = 0;
  private readonly inFlight = new Map<string, { settled: Promise<void>; release: () => void }>();

  constructor(options: FillOptions) {
    this.options = options;
  }

  async openMiss(key: string): Promise<MissOutcome> {
    const { fast, metrics } = this.options;
    const running = this.inFlight.get(key);
    if (running !== undefined) {
      metrics.coalescedWaits.inc();
      await Promise.race([running.settled, sleep(this.options.fillWaitMs)]);
      return this.afterWaiting(key);
    }
    let finish!: () => void;
    const flight = {
      settled: new Promise<void>((resolve) => (finish = resolve)),
      release: () => finish(),
    };
    this.inFlight.set(key, flight);
    const done = (): void => {
      // Only this fill's own entry: a DELETE may have let a newer fill start meanwhile.
      if (this.inFlight.get(key) === flight) this.inFlight.delete(key);
      finish();
    };
    try {
      // Each fill holds the lease under a name of its own, so a fill fenced by a DELETE that
      // ends late cannot release the lease of a newer fill of the same key.
      const holder = `${this.options.owner}/${(this.fillCount += 1)}`;
      if (!(await fast.acquireFillLease(key, holder, this.options.fillWaitMs))) {
        metrics.coalescedWaits.inc();
        await this.waitForRemoteFill(key);
        done();
        return await this.afterWaiting(key);
      }
      return await this.fill(key, holder, done);
    } catch (error) {
      done();
      throw error;
    }
  }

  /**
   * A DELETE came: a fill under way here can no longer publish, so its waiters stop waiting
   * (they find the blob gone) and the next reader does not wait on it either.
   */
  forget(key: string): void {
    const flight = this.inFlight.get(key);
    if (flight === undefined) return;
    this.inFlight.delete(key);
    flight.release();
  }

  /** After a fill elsewhere: read what it published, or read the durable tier (verified). */
  private async afterWaiting(key: string): Promise<MissOutcome> {
    const manifest = await this.options.fast.manifest(key);
    if (manifest !== null) return { kind: 'filled', manifest };
    if (await this.options.fast.isKnownAbsent(key)) return { kind: 'absent' };
    this.options.metrics.fills.inc({ result: 'bypassed' });
    const read = await this.options.store.get(key);
    if (read === null) return { kind: 'absent' };
    const { size, sha256 } = read.info;
    const stream = verifiedRead(read.stream, { key, size });
    stream.once('error', (error) => void this.reportDamage(key, error));
    return { kind: 'streaming', stream, size, sha256 };
  }

  private async waitForRemoteFill(key: string): Promise<void> {
    const { fast } = this.options;
    const deadline = Date.now() + this.options.fillWaitMs;
    let delay = 20;
    while (Date.now() < deadline) {
      if ((await fast.manifest(key)) !== null || !(await fast.fillLeaseHeld(key))) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
  }

  private async fill(key: string, holder: string, done: () => void): Promise<MissOutcome> {
    const { fast, store } = this.options;
    const release = (): void => {
      fast.releaseFillLease(key, holder).catch(() => undefined);
      done();
    };
    let read;
    try {
      // Read before the durable tier: a DELETE after this point makes the publish refuse.
      const { generation, knownAbsent } = await fast.beforeFill(key);
      if (knownAbsent) {
        release();
        return { kind: 'absent' };
      }
      read = await store.get(key);
      if (read === null) {
        await fast.rememberAbsent(key, this.options.negativeCacheMs);
        release();
        return { kind: 'absent' };
      }
      const { size, sha256 } = read.info;
      // Publishing inside the side copy, before the client sees the end, means a reader
      // that got the whole blob finds it cached.
      const tee = new Tee(
        async (branch) => {
          const staged = await fast.stage(key, branch, { size, sha256 });
          return fast.publish(staged, {
            generation,
            state: 'cached',
            ttlMs: this.options.cachedTtlMs,
          });
        },
        { commitOnEnd: true },
      );
      const stream = pipeline(verifiedRead(read.stream, { key, size }), tee.transform, (error) => {
        this.settle(key, tee, error ?? undefined)
          .finally(release)
          .catch(() => undefined);
      });
      return { kind: 'streaming', stream, size, sha256 };
    } catch (error) {
      release();
      throw error;
    }
  }

  private async settle(
    key: string,
    tee: Tee<PublishOutcome>,
    error: Error | undefined,
  ): Promise<void> {
    const { metrics, logger } = this.options;
    if (error !== undefined) {
      await tee.abort(error);
      if (!(await this.reportDamage(key, error))) metrics.fills.inc({ result: 'abandoned' });
      return;
    }
    const outcome = await tee.commit();
    if (outcome instanceof Error) {
      metrics.fills.inc({ result: 'failed' });
      logger.warn('Failed to fill the cache', { key, error: outcome.message });
      return;
    }
    metrics.fills.inc({ result: outcome === 'published' ? 'filled' : outcome });
  }

  /**
   * Counts and logs damaged bytes from the durable tier, and remembers the damage so the
   * next upload of the key replaces that copy. False when `error` is no damage.
   */
  private async reportDamage(key: string, error: Error): Promise<boolean> {
    if (!(error instanceof DigestMismatchError || error instanceof SizeMismatchError)) return false;
    this.options.metrics.fills.inc({ result: 'corrupt' });
    this.options.logger.error('Refused damaged bytes from the durable tier', {
      key,
      error: error.message,
    });
    await this.options.fast.rememberDamaged(key).catch(() => undefined);
    return true;
  }
}
