import { pipeline } from 'node:stream/promises';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import type { ReadAheadBudget } from '../redis/chunks.ts';
import type { PublishOutcome, RedisFastTier } from '../redis/fast-tier.ts';
import type { FillRecords } from '../redis/fill-records.ts';
import { DigestMismatchError, SizeMismatchError } from './errors.ts';
import { FillProgress } from './fill-progress.ts';
import type { BlobRead } from './store.ts';
import { DigestVerifier } from './verifier.ts';

export interface FillRunDeps {
  fast: RedisFastTier;
  records: FillRecords;
  metrics: Metrics;
  logger: Logger;
  budget: ReadAheadBudget;
  /** The fill lease's expiry; renewed every third of it while the fill runs. */
  leaseMs: number;
  cachedTtlMs: number;
}

export interface FillStart {
  key: string;
  /** This fill's name as the lease holder. */
  holder: string;
  /** The generation read after taking the lease: a DELETE since makes the publish refuse. */
  generation: string;
  /** The durable tier's object (opened, not yet read). */
  read: BlobRead;
}

/** How a fill ended: its publish outcome, or why it failed. */
export type FillEnd = PublishOutcome | 'corrupt' | 'failed' | 'fenced';

/** A fill under way: what readers stream behind, and its end (never rejects). */
export interface RunningFill {
  progress: FillProgress;
  ended: Promise<FillEnd>;
}

/** Stops a fill whose blob was deleted meanwhile. */
class FillFencedError extends Error {
  constructor(key: string) {
    super(`Blob ${key} was deleted while it was being filled`);
    this.name = 'FillFencedError';
  }
}

/**
 * Runs one fill to its end, whoever reads it: the durable tier's bytes pass one
 * `DigestVerifier` (each byte hashed once) into staged chunks, each handed to readers as
 * Redis acknowledges it (and to readers in this process as they come); verified, they are
 * published as a cached copy. The fill record is written while the first bytes are read,
 * so readers in other processes can stream behind the fill, and before it publishes (a
 * record that fails to be written fails the fill); the lease is renewed while the fill
 * runs, and a DELETE (a new generation, seen at a renewal) stops it. Timers end with the
 * fill.
 */
export function startFill(deps: FillRunDeps, start: FillStart): RunningFill {
  const { fast, records } = deps;
  const { key, holder, generation, read } = start;
  const { size, sha256 } = read.info;
  // Handed to the writer before `progress` exists; called only once bytes flow.
  const staging = fast.stagingWriter(key, size, {
    onStored: (index, data) => progress.stored(index, data),
    onReceived: (index, data, length) => progress.received(index, data, length),
  });
  const progress = new FillProgress({
    key,
    size,
    chunkBytes: fast.chunkBytes,
    uploadId: staging.uploadId,
    budget: deps.budget,
    ...optionalSha(sha256),
  });
  const stop = new AbortController();
  const { uploadId, chunkBytes } = progress;
  const { leaseMs } = deps;
  const record = { key, holder, generation, leaseMs, size, chunkBytes, uploadId };
  // Never rejects: a record that could not be written stops the fill.
  const announced = records
    .announce({ ...record, ...optionalSha(sha256), state: 'running' }, leaseMs)
    .catch((error: unknown) => stop.abort(asError(error)));
  const renewal = setInterval(
    () => {
      records.renew(key, holder, generation, deps.leaseMs).then(
        (outcome) => {
          if (outcome === 'deleted') stop.abort(new FillFencedError(key));
          else if (outcome === 'taken')
            deps.logger.warn('Lost the fill lease to another fill; carrying on', { key });
        },
        (error: unknown) =>
          deps.logger.warn('Failed to renew a fill lease', { key, error: String(error) }),
      );
    },
    Math.max(Math.floor(deps.leaseMs / 3), 1),
  );
  const ended = run();
  return { progress, ended };

  async function run(): Promise<FillEnd> {
    let end: FillEnd;
    try {
      const verifier = new DigestVerifier({ md5: key, size, ...optionalSha(sha256) });
      await pipeline(read.stream, verifier, staging.writable, { signal: stop.signal });
      await announced;
      if (stop.signal.aborted) throw stop.signal.reason;
      end = await fast.publish(staging.staged(size, sha256), {
        generation,
        state: 'cached',
        ttlMs: deps.cachedTtlMs,
      });
      progress.finish();
    } catch (error) {
      const failure = stop.signal.aborted ? (stop.signal.reason as Error) : asError(error);
      await fast.discard(staging.staged(size, sha256)).catch(() => undefined);
      progress.fail(failure);
      end = await classify(deps, key, failure);
    }
    // The record is written (or failed to be) before its end is recorded.
    await announced;
    clearInterval(renewal);
    deps.metrics.fills.inc({ result: METRIC_RESULT[end] });
    const verified = end !== 'corrupt' && end !== 'failed' && end !== 'fenced';
    await records
      .end(key, holder, verified ? 'done' : 'failed', deps.leaseMs)
      .catch(() => undefined);
    return end;
  }
}

/** `blobcache_fills_total{result}` per end (`filled` for a publish, as before). */
const METRIC_RESULT: Record<FillEnd, string> = {
  published: 'filled',
  exists: 'exists',
  deleted: 'deleted',
  fenced: 'deleted',
  'chunk-lost': 'chunk-lost',
  corrupt: 'corrupt',
  failed: 'failed',
};

function optionalSha(sha256: string | undefined): { sha256?: string } {
  return sha256 === undefined ? {} : { sha256 };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Classifies a failed fill; damaged bytes are logged and remembered. */
async function classify(deps: FillRunDeps, key: string, error: Error): Promise<FillEnd> {
  if (error instanceof FillFencedError) return 'fenced';
  if (error instanceof DigestMismatchError || error instanceof SizeMismatchError) {
    deps.logger.error('Refused damaged bytes from the durable tier', { key, error: error.message });
    await deps.fast.rememberDamaged(key).catch(() => undefined);
    return 'corrupt';
  }
  deps.logger.warn('Failed to fill the cache', { key, error: error.message });
  return 'failed';
}
