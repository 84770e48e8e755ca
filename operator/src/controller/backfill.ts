import type { V1Job } from '@kubernetes/client-node';
import { timestamp } from '../api/v1alpha1/conditions.ts';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import type { BlobCacheStatusBackfill } from '../api/v1alpha1/types.generated.ts';
import type { PartitionReport } from '../redis/backfill-state.ts';
import { backfillJobName, RERUN_ANNOTATION } from '../resources/backfill-job.ts';

/** What the backfill phase found. */
export interface BackfillInputs {
  /**
   * The incarnation id Redis holds: undefined when Redis could not be asked, null when the
   * cluster holds none yet (not created).
   */
  incarnation: string | null | undefined;
  /** The Job of the incarnation in status.backfill (or of `incarnation`), if it exists. */
  job: V1Job | null;
  /** Progress the Job's pods wrote, for that incarnation. */
  reports: readonly PartitionReport[];
}

export type WarmVerdict = { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

/** What the phase should do, and what the status should say. */
export interface BackfillDecision {
  /** The next status.backfill (undefined: none). */
  status: BlobCacheStatusBackfill | undefined;
  /** The Warm condition; undefined leaves the current one. */
  warm?: WarmVerdict;
  /** Create the Job of this incarnation, or of this rerun of it (if it does not exist). */
  create?: { incarnation: string; rerun?: string };
  /** Keep the Job named in the status (a Job not kept is pruned). */
  keep: boolean;
  events: { type: 'Normal' | 'Warning'; reason: string; message: string }[];
  /** Look again this soon (progress is in Redis, which no watch announces). */
  requeueAfterMs?: number;
}

/** How often progress is read while a Job runs. */
export const PROGRESS_POLL_MS = 10_000;

/** The rerun annotation's value on the BlobCache; undefined when absent or empty. */
function rerunAsked(cache: DefaultedBlobCache): string | undefined {
  const value = cache.metadata.annotations?.[RERUN_ANNOTATION];
  return value === undefined || value === '' ? undefined : value;
}

/** Longest part of a user's annotation value quoted in messages. */
const QUOTED = 63;

const quoted = (value: string): string =>
  value.length > QUOTED ? `${value.slice(0, QUOTED)}...` : value;

const finishedCondition = (job: V1Job | null, type: 'Complete' | 'Failed') =>
  job?.status?.conditions?.find(
    (condition) => condition.type === type && condition.status === 'True',
  );

/** Sums the partitions' reports into status fields. */
export function progressOf(
  reports: readonly PartitionReport[],
): Pick<
  BlobCacheStatusBackfill,
  | 'loadedBytes'
  | 'totalBytes'
  | 'loadedBlobs'
  | 'totalBlobs'
  | 'skippedBlobs'
  | 'bytesPerSecond'
  | 'secondsLeft'
  | 'partitionsReporting'
  | 'percent'
> {
  const sum = (pick: (report: PartitionReport) => number) =>
    reports.reduce((total, report) => total + pick(report), 0);
  const totalBytes = sum((report) => report.bytesTotal);
  const loadedBytes = sum((report) => report.bytes);
  const left = reports.map((report) => report.secondsLeft).filter((value) => value !== null);
  return {
    loadedBytes,
    totalBytes,
    loadedBlobs: sum((report) => report.blobs),
    totalBlobs: sum((report) => report.blobsTotal),
    skippedBlobs: sum((report) => report.blobsSkipped),
    bytesPerSecond: Math.round(sum((report) => report.bytesPerSecond)),
    ...(left.length === 0 ? {} : { secondsLeft: Math.ceil(Math.max(...left)) }),
    partitionsReporting: reports.length,
    percent: totalBytes === 0 ? 0 : Math.floor((100 * loadedBytes) / totalBytes),
  };
}

/**
 * The backfill's next step and status, from what the phase observed (pure). One backfill per
 * incarnation: a new incarnation with policy OnColdStart asks for its Job, which is never
 * replaced for the same incarnation (a spec change waits for the next cold start) unless
 * the rerun annotation asks for another run once it finished (see `rerunDecision`); its
 * progress comes from the pods' reports, its outcome from the Job's conditions; a finished
 * Job is kept `ttlSecondsAfterFinished`, then left to the prune phase.
 */
export function decideBackfill(
  cache: DefaultedBlobCache,
  inputs: BackfillInputs,
  now: Date,
): BackfillDecision {
  const previous = cache.status?.backfill;
  const { policy, maxBytes, parallelism } = cache.spec.backfill;
  const { incarnation } = inputs;
  if (incarnation === undefined) {
    // Redis could not be asked: change nothing, keep a Job that runs.
    return { status: previous, keep: true, events: [] };
  }
  if (incarnation === null) {
    return {
      status: previous,
      warm: {
        status: 'False',
        reason: 'NoDataSet',
        message: 'The Redis cluster holds no data set yet',
      },
      keep: previous?.phase === 'Pending' || previous?.phase === 'Running',
      events: [],
    };
  }
  // An annotation already there when the data set is new asks for nothing more: noted as answered.
  const rerun = rerunAsked(cache);
  const answered = rerun === undefined ? {} : { rerun };
  if (previous?.incarnation !== incarnation) {
    if (policy === 'Never') {
      const message = 'backfill.policy is Never: the cache warms with traffic';
      return {
        status: { incarnation, phase: 'Skipped', message, ...answered },
        warm: { status: 'Unknown', reason: 'BackfillNever', message },
        keep: false,
        events: [],
      };
    }
    const name = backfillJobName(cache.metadata.name!, incarnation);
    const message = `Loading the newest blobs up to ${maxBytes} with ${parallelism} pod${parallelism === 1 ? '' : 's'}`;
    return {
      status: {
        incarnation,
        phase: 'Pending',
        job: name,
        startedAt: timestamp(now),
        message,
        ...answered,
      },
      warm: { status: 'False', reason: 'Backfilling', message },
      create: { incarnation },
      keep: true,
      events: [
        {
          type: 'Normal',
          reason: 'BackfillStarted',
          message: `The Redis data set ${incarnation} is new (a cold start): Job ${name}. ${message}`,
        },
      ],
      requeueAfterMs: PROGRESS_POLL_MS,
    };
  }
  return sameIncarnation(cache, { ...inputs, incarnation }, now);
}

function sameIncarnation(
  cache: DefaultedBlobCache,
  inputs: BackfillInputs & { incarnation: string },
  now: Date,
): BackfillDecision {
  const previous = cache.status!.backfill!;
  const { policy, ttlSecondsAfterFinished } = cache.spec.backfill;
  const { job } = inputs;
  const phase = previous.phase;
  const finished = phase !== 'Pending' && phase !== 'Running';
  const asked = rerunAsked(cache);
  const rerunPending = asked !== undefined && asked !== previous.rerun;
  if (finished && rerunPending) return rerunDecision(cache, inputs.incarnation, asked, now);
  if (phase === 'Skipped' || phase === 'Cancelled')
    return { status: previous, keep: false, events: [] };
  if (phase === 'Succeeded' || phase === 'Failed') {
    // Finished: keep the Job (and its pods' logs) a while, then let it be pruned.
    const completedMs = Date.parse(previous.completedAt ?? timestamp(now));
    const leftMs = completedMs + ttlSecondsAfterFinished * 1000 - now.getTime();
    return {
      status: previous,
      keep: job !== null && leftMs > 0,
      events: [],
      ...(job !== null && leftMs > 0 ? { requeueAfterMs: leftMs } : {}),
    };
  }
  if (policy === 'Never') {
    const message = 'Stopped: backfill.policy was set to Never';
    return {
      status: { ...previous, phase: 'Cancelled', message },
      warm: { status: 'Unknown', reason: 'BackfillNever', message },
      keep: false,
      events: [{ type: 'Normal', reason: 'BackfillCancelled', message }],
    };
  }
  // Reports of an earlier run of this data set (same keys in Redis) are not this run's.
  const first = backfillJobName(cache.metadata.name!, inputs.incarnation);
  const reports = inputs.reports.filter((report) => (report.run ?? first) === previous.job);
  const progress = progressOf(reports);
  const complete = finishedCondition(job, 'Complete');
  const failed = finishedCondition(job, 'Failed');
  if (complete !== undefined || failed !== undefined) {
    const done = complete ?? failed!;
    const completedAt =
      done.lastTransitionTime === undefined
        ? timestamp(now)
        : timestamp(new Date(done.lastTransitionTime));
    const loaded = `${progress.loadedBlobs} blobs (${progress.loadedBytes} bytes) of the newest in Redis, ${progress.skippedBlobs} skipped`;
    const status: BlobCacheStatusBackfill =
      complete !== undefined
        ? {
            ...previous,
            ...progress,
            percent: 100,
            phase: 'Succeeded',
            completedAt,
            message: loaded,
          }
        : {
            ...previous,
            ...progress,
            phase: 'Failed',
            completedAt,
            message: `${failed!.message ?? failed!.reason ?? 'The Job failed'}${failureDetail(reports)}; ${loaded}`,
          };
    const succeeded = complete !== undefined;
    return {
      status,
      warm: succeeded
        ? { status: 'True', reason: 'BackfillSucceeded', message: status.message! }
        : { status: 'False', reason: 'BackfillFailed', message: status.message! },
      keep: true,
      events: [
        succeeded
          ? { type: 'Normal', reason: 'BackfillSucceeded', message: status.message! }
          : { type: 'Warning', reason: 'BackfillFailed', message: status.message! },
      ],
      // A rerun asked for during this run starts now that it ended.
      requeueAfterMs: rerunPending ? 1_000 : ttlSecondsAfterFinished * 1000,
    };
  }
  // Not finished (or not in the cache yet): ask for it again, report what the pods wrote.
  const running = (job?.status?.active ?? 0) > 0 || reports.length > 0;
  const message = running
    ? `${progress.percent}% of the selected bytes loaded (${progress.partitionsReporting}/${cache.spec.backfill.parallelism} pods reporting)`
    : (previous.message ?? 'Waiting for the Job to start');
  const status: BlobCacheStatusBackfill = {
    ...previous,
    ...(reports.length === 0 ? {} : progress),
    phase: running ? 'Running' : 'Pending',
    message,
  };
  return {
    status,
    warm: { status: 'False', reason: 'Backfilling', message },
    create: {
      incarnation: inputs.incarnation,
      ...(previous.job === first || previous.rerun === undefined ? {} : { rerun: previous.rerun }),
    },
    keep: true,
    events: [],
    requeueAfterMs: PROGRESS_POLL_MS,
  };
}

/**
 * The rerun annotation has a value not answered yet, and no backfill runs: a new Job for the
 * same data set (the earlier one is let go), unless backfill.policy is Never, which refuses
 * it with a Warning. Either way the value counts as answered.
 */
function rerunDecision(
  cache: DefaultedBlobCache,
  incarnation: string,
  rerun: string,
  now: Date,
): BackfillDecision {
  const previous = cache.status!.backfill!;
  const { policy, maxBytes, parallelism } = cache.spec.backfill;
  const asked = `${RERUN_ANNOTATION}=${quoted(rerun)}`;
  if (policy === 'Never') {
    const kept = previous.phase === 'Succeeded' || previous.phase === 'Failed';
    return {
      status: { ...previous, rerun },
      keep: kept,
      events: [
        {
          type: 'Warning',
          reason: 'BackfillRerunRefused',
          message: `${asked} asks for a backfill, but backfill.policy is Never: set it to OnColdStart and ask again`,
        },
      ],
    };
  }
  const name = backfillJobName(cache.metadata.name!, incarnation, rerun);
  const message = `Loading the newest blobs up to ${maxBytes} with ${parallelism} pod${parallelism === 1 ? '' : 's'} again (${asked})`;
  return {
    status: { incarnation, phase: 'Pending', job: name, startedAt: timestamp(now), message, rerun },
    warm: { status: 'False', reason: 'Backfilling', message },
    create: { incarnation, rerun },
    keep: true,
    events: [
      {
        type: 'Normal',
        reason: 'BackfillStarted',
        message: `${asked} asks for the backfill of the Redis data set ${incarnation} again (its last run: ${previous.phase}): Job ${name}`,
      },
    ],
    requeueAfterMs: PROGRESS_POLL_MS,
  };
}

/** The first error a failed pod reported, if any. */
function failureDetail(reports: readonly PartitionReport[]): string {
  const failed = reports.find((report) => report.state === 'failed' && report.error !== undefined);
  return failed === undefined ? '' : ` (partition ${failed.partition}: ${failed.error})`;
}

/** Share of a backfill done (1 once it succeeded), null when none warms the cache. */
export function progressRatio(status: BlobCacheStatusBackfill | undefined): number | null {
  switch (status?.phase) {
    case 'Succeeded':
      return 1;
    case 'Pending':
    case 'Running':
    case 'Failed':
      return (status.totalBytes ?? 0) === 0 ? 0 : (status.loadedBytes ?? 0) / status.totalBytes!;
    default:
      return null;
  }
}
