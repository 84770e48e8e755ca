/**
 * How far a backfill partition got, as it writes it to Redis for the operator (JSON under
 * `backfillProgressKey`) and prints it for people.
 */
export interface BackfillReport {
  /** The incarnation (Redis data set) being warmed; '' when the cluster has none. */
  incarnation: string;
  partition: number;
  partitions: number;
  state: 'listing' | 'loading' | 'done' | 'failed';
  /** Blobs and bytes of this partition's share of the budget. */
  blobsTotal: number;
  bytesTotal: number;
  /** Of those, in the cache now (loaded by this run, or found there). */
  blobs: number;
  bytes: number;
  /** Loaded by this run (the rest were already cached, or loaded by live traffic meanwhile). */
  blobsLoaded: number;
  bytesLoaded: number;
  /** Blobs that could not be loaded (damaged in the durable tier, or gone). */
  blobsSkipped: number;
  /** The whole budget (every partition's). */
  maxBytes: number;
  bytesPerSecond: number;
  /** Estimated seconds left; null until there is a rate. */
  secondsLeft: number | null;
  startedAt: string;
  updatedAt: string;
  /** Why it failed. */
  error?: string;
  /** The run this report belongs to (`BLOBCACHE_BACKFILL_RUN`, a backfill Job's name). */
  run?: string;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Percent of this partition's share done (100 when it has nothing to do). */
export function percentDone(report: Pick<BackfillReport, 'bytes' | 'bytesTotal'>): number {
  return report.bytesTotal === 0 ? 100 : Math.floor((100 * report.bytes) / report.bytesTotal);
}

/** One line a person reads in `kubectl logs`. */
export function progressLine(report: BackfillReport): string {
  const who = `Backfill ${report.partition + 1}/${report.partitions}`;
  if (report.state === 'listing') return `${who}: listing the durable tier`;
  const share =
    `${report.blobs}/${report.blobsTotal} blobs, ${formatBytes(report.bytes)} of ` +
    `${formatBytes(report.bytesTotal)} (${percentDone(report)}%; budget ` +
    `${formatBytes(report.maxBytes)} over ${report.partitions} partition${report.partitions === 1 ? '' : 's'})`;
  const loaded = `${report.blobsLoaded} loaded (${formatBytes(report.bytesLoaded)}), ${report.blobsSkipped} skipped`;
  if (report.state === 'done') return `${who} done: ${share}; ${loaded}`;
  if (report.state === 'failed')
    return `${who} failed: ${report.error ?? 'unknown error'}; ${share}`;
  const rate = `${formatBytes(report.bytesPerSecond)}/s`;
  const left =
    report.secondsLeft === null
      ? 'time left unknown'
      : `about ${formatSeconds(report.secondsLeft)} left`;
  return `${who}: ${share}; ${loaded}; ${rate}, ${left}`;
}
