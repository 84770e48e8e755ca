import type { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { LocalTier } from '../local/local-tier.ts';
import type { Metrics } from '../metrics.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import { readCached } from './cached-read.ts';
import type { KeyGuard, KeyGuards } from './key-guards.ts';
import type { BlobRead, BlobStore, ByteRange } from './store.ts';

export interface LocalReadDeps {
  fast: RedisFastTier;
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
  local: LocalTier;
}

/**
 * The local tier's copy of `key` (or `range` of it), or null when it holds none it can
 * trust now: the blob's generation is read from Redis first, so a copy made before a
 * DELETE this process was not told of is not served. `guard` was entered before.
 */
export async function readLocalCopy(
  deps: LocalReadDeps,
  key: string,
  range: ByteRange | undefined,
  guard: KeyGuard,
): Promise<BlobRead | null> {
  const { local, fast, metrics } = deps;
  if (!local.holds(key)) return null;
  const generation = await fast.generation(key);
  const copy = await local.read(key, generation, range, () => guard.deleted);
  if (copy === null) return null;
  metrics.localTierReads.inc({ result: 'hit' });
  // Counted when opened (a listener on the stream would switch it to flowing mode).
  metrics.localTierServedBytes.inc(
    range === undefined ? copy.info.size : range.end - range.start + 1,
  );
  return copy;
}

/**
 * Streams a whole large blob found in Redis through the local tier: behind the copy being
 * written, or behind a copy it starts now; where the copy stops (it failed, or a DELETE
 * abandoned it) the read goes on from Redis. Null when no copy can be kept (no room), or a
 * DELETE came since `requestGuard` was entered (the copy would be made from what it read).
 */
export function readThroughLocal(
  deps: LocalReadDeps,
  manifest: Manifest,
  generation: string,
  guards: KeyGuards,
  requestGuard: KeyGuard,
): Readable | null {
  const { local, metrics } = deps;
  const end = manifest.size - 1;
  let fill = local.filling(manifest.key);
  let result: 'followed' | 'filled' = 'followed';
  if (fill === undefined) {
    if (requestGuard.deleted) return null;
    // Entered now, in the same turn as the check above: no DELETE can fall in between, so
    // the copy's guard sees every DELETE since the generation and manifest were read.
    const fillGuard = guards.enter(manifest.key);
    fill = local.startFill(manifest, generation, () => readCached(deps, manifest), fillGuard);
    result = 'filled';
  }
  if (fill === undefined) {
    metrics.localTierReads.inc({ result: 'skipped' });
    return null;
  }
  metrics.localTierReads.inc({ result });
  return local.follow(fill, { start: 0, end }, (from) =>
    readCached(deps, manifest, { start: from, end }),
  );
}
