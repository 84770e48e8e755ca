import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { readAheadBudget, type ReadAheadBudget } from '../redis/chunks.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import { FillRecords } from '../redis/fill-records.ts';
import { DigestMismatchError, SizeMismatchError } from './errors.ts';
import { followFill } from './fill-follower.ts';
import type { FillProgress } from './fill-progress.ts';
import { readBehind } from './fill-reader.ts';
import { startFill, type FillEnd } from './fill-run.ts';
import type { BlobStore, ByteRange } from './store.ts';
import { verifiedRead } from './verified-read.ts';

export interface FillOptions {
  fast: RedisFastTier;
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
  /** Identifies this process as a fill-lease holder. */
  owner: string;
  /** How long a reader waits for a fill that holds the lease to show itself before reading the durable tier itself. */
  fillWaitMs: number;
  /** Expiry of the fill lease; a running fill renews it every third of it. */
  fillLeaseMs: number;
  negativeCacheMs: number;
  cachedTtlMs: number;
  /** @default the process's read-ahead budget */
  budget?: ReadAheadBudget;
}

/**
 * What a reader of a blob absent from Redis gets. A `streaming` stream is the whole blob
 * (or the range asked for), verified against its key: it fails rather than ends when the
 * bytes are damaged.
 */
export type MissOutcome =
  | { kind: 'absent' }
  | { kind: 'filled'; manifest: Manifest }
  | { kind: 'streaming'; stream: Readable; size: number; sha256?: string };

/** How `fill` (the backfill's way in) found or left a blob. */
export type FillResult =
  | { kind: 'cached' }
  | { kind: 'absent' }
  | { kind: 'filled'; size: number; end: FillEnd }
  | { kind: 'joined'; size: number }
  | { kind: 'busy' }
  | { kind: 'failed'; error: Error };

/** Where the bytes of a missing blob come from. */
type Source =
  | { kind: 'absent' }
  | { kind: 'cached' }
  | { kind: 'fill'; progress: FillProgress; ended?: Promise<FillEnd> }
  | { kind: 'bypass' };

/**
 * The one fill engine of the production tiers. Each blob absent from Redis is filled once
 * from the durable tier across every process (the fill lease, `SET NX PX`, renewed while
 * the fill runs, Redis re-checked after taking it), and the fill belongs to no reader: it
 * runs to its end whether or not anyone still reads. Readers anywhere stream behind it
 * (`readBehind`): in this process from its window, in others from its staged chunks,
 * followed by one loop per process (`followFill`). The backfill drives the same fills.
 *
 * A DELETE fences fills twice: a fill publishes only under the generation it read after
 * taking the lease, and a renewal that finds the generation changed stops it.
 */
export class FillCoordinator {
  private readonly options: FillOptions;
  private readonly records: FillRecords;
  private readonly budget: ReadAheadBudget;
  private fillCount = 0;
  /** Fills this process runs or follows, by key: what new readers of the key join. */
  private readonly sources = new Map<string, Promise<Source>>();

  constructor(options: FillOptions) {
    this.options = options;
    this.records = new FillRecords(options.fast.redis);
    this.budget = options.budget ?? readAheadBudget();
  }

  async openMiss(key: string, range?: ByteRange): Promise<MissOutcome> {
    const { fast, store, metrics } = this.options;
    const source = await this.sourceOf(key);
    switch (source.kind) {
      case 'absent':
        return { kind: 'absent' };
      case 'cached': {
        const manifest = await fast.manifest(key);
        // Deleted (or evicted) since it was seen: look again, as a new reader would.
        return manifest === null ? this.openMiss(key, range) : { kind: 'filled', manifest };
      }
      case 'fill': {
        const { progress } = source;
        const stream = readBehind(this.options, progress, range);
        return { kind: 'streaming', stream, size: progress.size, ...sha(progress.sha256) };
      }
      case 'bypass': {
        metrics.fills.inc({ result: 'bypassed' });
        const read = await store.get(key);
        if (read === null) return { kind: 'absent' };
        const { size, sha256 } = read.info;
        const stream = verifiedRead(read.stream, { key, size }, range);
        stream.once('error', (error) => {
          if (error instanceof DigestMismatchError || error instanceof SizeMismatchError)
            metrics.fills.inc({ result: 'corrupt' });
        });
        return { kind: 'streaming', stream, size, ...sha(sha256) };
      }
    }
  }

  /**
   * Loads `key` into Redis unless it is there, through the fill readers use (joining one
   * under way anywhere), and resolves once that fill ended.
   */
  async fill(key: string): Promise<FillResult> {
    const source = await this.sourceOf(key);
    if (source.kind !== 'fill') return { kind: source.kind === 'bypass' ? 'busy' : source.kind };
    const { progress, ended } = source;
    try {
      await progress.settled;
    } catch (error) {
      return { kind: 'failed', error: error instanceof Error ? error : new Error(String(error)) };
    }
    if (ended === undefined) return { kind: 'joined', size: progress.size };
    return { kind: 'filled', size: progress.size, end: await ended };
  }

  /** A DELETE came: readers that start from now on do not join fills that started earlier. */
  forget(key: string): void {
    this.sources.delete(key);
  }

  /** The fill new readers of `key` join: one under way here, or found (or started) anew. */
  private sourceOf(key: string): Promise<Source> {
    const known = this.sources.get(key);
    if (known !== undefined) {
      this.options.metrics.coalescedWaits.inc();
      return known;
    }
    const found = this.find(key);
    this.sources.set(key, found);
    const drop = (): void => {
      if (this.sources.get(key) === found) this.sources.delete(key);
    };
    found.then((source) => {
      if (source.kind === 'fill') void source.progress.settled.finally(drop).catch(() => undefined);
      else drop();
    }, drop);
    return found;
  }

  /**
   * Finds the fill of `key`: follows one under way elsewhere, or takes the lease and starts
   * one (both found in one round trip). While another process holds the lease without
   * showing a fill (it is still opening the object), waits up to `fillWaitMs`, then reads
   * the durable tier directly.
   */
  private async find(key: string): Promise<Source> {
    const { fillWaitMs, fillLeaseMs } = this.options;
    const deadline = Date.now() + fillWaitMs;
    let delay = 5;
    for (;;) {
      const holder = `${this.options.owner}/${(this.fillCount += 1)}`;
      const seen = await this.records.lookupOrAcquire(key, holder, fillLeaseMs);
      if (seen.cached) return { kind: 'cached' };
      if (seen.knownAbsent) return { kind: 'absent' };
      // The generation was read under the lease: a DELETE after it fences the fill.
      if (seen.acquired) return this.start(key, holder, seen.generation);
      const { record, leaseHolder } = seen;
      if (
        record !== null &&
        record.state === 'running' &&
        record.generation === seen.generation &&
        record.holder === leaseHolder
      ) {
        this.options.metrics.coalescedWaits.inc();
        const deps = { records: this.records, logger: this.options.logger, budget: this.budget };
        return { kind: 'fill', progress: followFill(deps, record) };
      }
      if (Date.now() > deadline) return { kind: 'bypass' };
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  }

  /** Starts a fill under the lease `holder` just took; lets go of the lease if it cannot. */
  private async start(key: string, holder: string, generation: string): Promise<Source> {
    const { fast, store, fillLeaseMs, negativeCacheMs } = this.options;
    let started = false;
    try {
      const read = await store.get(key);
      if (read === null) {
        await fast.rememberAbsent(key, negativeCacheMs);
        return { kind: 'absent' };
      }
      const running = startFill(
        { ...this.options, records: this.records, budget: this.budget, leaseMs: fillLeaseMs },
        { key, holder, generation, read },
      );
      started = true;
      return { kind: 'fill', ...running };
    } finally {
      if (!started) await this.records.release(key, holder).catch(() => undefined);
    }
  }
}

function sha(value: string | undefined): { sha256?: string } {
  return value === undefined ? {} : { sha256: value };
}
