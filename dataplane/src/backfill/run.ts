import type { Logger } from 'winston';
import { DigestMismatchError, SizeMismatchError } from '../blob/errors.ts';
import type { FillResult } from '../blob/fills.ts';
import type { BlobStore } from '../blob/store.ts';
import type { BackfillReport } from './progress.ts';
import { partitionOf, selectNewest, type Candidate } from './select.ts';

export interface BackfillSettings {
  /** Bytes of the most recent blobs to load, over all partitions. */
  maxBytes: number;
  /** Blobs loaded at once by this process. */
  parallelism: number;
  partition: number;
  partitions: number;
  incarnation: string;
  /** How often progress is printed and written. */
  progressIntervalMs: number;
  /** Names the run in its reports. */
  run?: string;
}

export interface BackfillDeps {
  /** The durable tier, listed for candidates. */
  store: Pick<BlobStore, 'list'>;
  /** The data plane's fill engine: coalesces with fills of live traffic. */
  fill(key: string): Promise<FillResult>;
  /** Whether the fast tier holds `key` now. */
  isCached(key: string): Promise<boolean>;
  /** Writes progress where the operator reads it; failures are logged, not fatal. */
  publish(report: BackfillReport): Promise<void>;
  /** Prints a progress line. */
  print(report: BackfillReport): void;
  logger: Logger;
  now?: () => number;
}

/** Attempts per blob for passing trouble (a fill held elsewhere without showing, S3 errors). */
const ATTEMPTS = 3;

/**
 * Loads this partition's share of the most recent blobs (up to the budget over every
 * partition) into the fast tier through the fill engine, skipping what is cached already.
 * Resolves with the final report: `done`, or `failed` when some blob could not be loaded
 * for a reason other than damage or absence (the caller exits non-zero, so a Job retries;
 * the rerun skips what got loaded).
 */
export async function runBackfill(
  deps: BackfillDeps,
  settings: BackfillSettings,
): Promise<BackfillReport> {
  const now = deps.now ?? Date.now;
  const started = now();
  const report: BackfillReport = {
    incarnation: settings.incarnation,
    partition: settings.partition,
    partitions: settings.partitions,
    state: 'listing',
    blobsTotal: 0,
    bytesTotal: 0,
    blobs: 0,
    bytes: 0,
    blobsLoaded: 0,
    bytesLoaded: 0,
    blobsSkipped: 0,
    maxBytes: settings.maxBytes,
    bytesPerSecond: 0,
    secondsLeft: null,
    startedAt: new Date(started).toISOString(),
    updatedAt: new Date(started).toISOString(),
    ...(settings.run === undefined ? {} : { run: settings.run }),
  };
  let loadingSince = started;
  const tell = async (): Promise<void> => {
    const elapsed = (now() - loadingSince) / 1000;
    report.bytesPerSecond = elapsed > 0 ? Math.round(report.bytesLoaded / elapsed) : 0;
    report.secondsLeft =
      report.bytesPerSecond > 0 ? (report.bytesTotal - report.bytes) / report.bytesPerSecond : null;
    report.updatedAt = new Date(now()).toISOString();
    deps.print(report);
    await deps
      .publish(report)
      .catch((error: unknown) =>
        deps.logger.warn('Failed to write backfill progress', { error: String(error) }),
      );
  };
  await tell();
  const chosen = await selectNewest(deps.store.list(), settings.maxBytes);
  const mine = chosen.filter(
    (blob) => partitionOf(blob.key, settings.partitions) === settings.partition,
  );
  report.blobsTotal = mine.length;
  report.bytesTotal = mine.reduce((sum, blob) => sum + blob.size, 0);
  report.state = 'loading';
  loadingSince = now();
  const ticker = setInterval(() => void tell(), settings.progressIntervalMs);
  const failures: string[] = [];
  try {
    await inParallel(mine, settings.parallelism, async (blob) => {
      const outcome = await load(deps, blob);
      if (outcome === 'loaded' || outcome === 'present') {
        report.blobs += 1;
        report.bytes += blob.size;
      }
      if (outcome === 'loaded') {
        report.blobsLoaded += 1;
        report.bytesLoaded += blob.size;
      }
      if (outcome === 'skipped' || outcome instanceof Error) report.blobsSkipped += 1;
      if (outcome instanceof Error) failures.push(`${blob.key}: ${outcome.message}`);
    });
  } finally {
    clearInterval(ticker);
  }
  if (failures.length > 0) {
    report.state = 'failed';
    report.error = `${failures.length} blob(s) could not be loaded, e.g. ${failures[0]}`;
  } else {
    report.state = 'done';
  }
  await tell();
  return report;
}

/** Loads one blob: `loaded` by this run, `present` (cached, by whoever), `skipped`, or the error. */
async function load(
  deps: BackfillDeps,
  blob: Candidate,
): Promise<'loaded' | 'present' | 'skipped' | Error> {
  let last: Error = new Error('not tried');
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (await deps.isCached(blob.key)) return 'present';
    const result = await deps.fill(blob.key);
    switch (result.kind) {
      case 'cached':
      case 'joined':
        return 'present';
      case 'filled':
        if (result.end === 'published') return 'loaded';
        if (result.end === 'exists') return 'present';
        // Deleted meanwhile, or a staged chunk evicted before the publish.
        if (result.end !== 'chunk-lost') return 'skipped';
        last = new Error('a staged chunk was evicted before the publish');
        break;
      case 'absent':
        return 'skipped';
      case 'busy':
        last = new Error('another process held its fill without progress');
        break;
      case 'failed':
        if (
          result.error instanceof DigestMismatchError ||
          result.error instanceof SizeMismatchError
        )
          return 'skipped';
        last = result.error;
    }
    deps.logger.warn('Failed to load a blob; trying again', {
      key: blob.key,
      attempt,
      error: last.message,
    });
  }
  return last;
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
