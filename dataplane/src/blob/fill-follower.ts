import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'winston';
import type { ReadAheadBudget } from '../redis/chunks.ts';
import type { FillRecord, FillRecords } from '../redis/fill-records.ts';
import { FillProgress } from './fill-progress.ts';

export interface FollowDeps {
  records: FillRecords;
  logger: Logger;
  budget: ReadAheadBudget;
}

/** Polls start this fast after a chunk arrived and slow down to `MAX_POLL_MS` while none does. */
const MIN_POLL_MS = 2;
const MAX_POLL_MS = 50;
/** Expiries of the lease without lease or chunk after which the followed fill counts as lost. */
const LOST_AFTER_EXPIRIES = 3;
/** Redis errors in a row after which the followed fill counts as lost to this process. */
const MAX_ERRORS = 10;

/** The fill in another process stopped without an outcome (it died, or lost its lease). */
export class FillLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FillLostError';
  }
}

/**
 * Follows a fill run by another process, so readers here stream behind it: one loop per
 * blob and process notices each chunk as it is staged (fetching its bytes into memory when
 * a reader waits for it, only checking it exists otherwise) and the fill's outcome. The
 * fill counts as lost when its lease passes to another holder, or when neither its lease
 * nor a new chunk was seen for three times as long as the lease lasts, before it ended.
 */
export function followFill(deps: FollowDeps, record: FillRecord): FillProgress {
  const progress = new FillProgress({ ...record, budget: deps.budget });
  void follow(deps, record, progress).catch((error: unknown) =>
    progress.fail(error instanceof Error ? error : new Error(String(error))),
  );
  return progress;
}

async function follow(deps: FollowDeps, record: FillRecord, progress: FillProgress): Promise<void> {
  let index = 0;
  let delay = MIN_POLL_MS;
  let errors = 0;
  let leaseSeen = Date.now();
  while (!progress.ended) {
    let poll;
    try {
      poll = await deps.records.poll(record, index, progress.awaited(index));
      errors = 0;
    } catch (error) {
      if (++errors >= MAX_ERRORS) throw error;
      await sleep(MAX_POLL_MS);
      continue;
    }
    if (index < progress.chunkCount && poll.chunk !== null) {
      progress.stored(index, poll.chunk === true ? undefined : poll.chunk);
      index += 1;
      delay = MIN_POLL_MS;
      // A fill that stages chunks is alive, whatever its lease looked like a moment ago.
      leaseSeen = Date.now();
      continue;
    }
    if (poll.state === 'failed') throw new FillLostError(`The fill of ${record.key} failed`);
    // Done with a chunk still missing: the publish was refused and the chunks dropped;
    // readers then continue from the durable tier.
    if (poll.state === 'done' || poll.publishedUploadId === record.uploadId) {
      progress.finish();
      return;
    }
    // A lease gone for a while may be a renewal late by a stall of the filler's process (it
    // takes an unclaimed lease back): only another holder ends the fill at once (a new fill
    // took over); with neither lease nor chunk for three expiries, the filler is taken for
    // dead (no other process would have left its lease unclaimed that long).
    if (poll.leaseHolder === record.holder) leaseSeen = Date.now();
    if (
      (poll.leaseHolder !== null && poll.leaseHolder !== record.holder) ||
      Date.now() - leaseSeen > LOST_AFTER_EXPIRIES * record.leaseMs
    ) {
      deps.logger.warn('Lost the fill this process streamed behind', { key: record.key, index });
      throw new FillLostError(`The fill of ${record.key} stopped before its end`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}
