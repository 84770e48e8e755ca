/**
 * How the 16,384 hash slots should be spread over the shards, and the next group of slots
 * to move towards that. Pure and deterministic: recomputed from the observed ownership at
 * every step, so an interrupted rebalance picks up where it stopped.
 */
import { SLOTS } from './model.ts';

/** Slots each of `shards` shards should own: even, the first ones one more. */
export function quotas(shards: number): number[] {
  return Array.from(
    { length: shards },
    (_, shard) => Math.floor(SLOTS / shards) + (shard < SLOTS % shards ? 1 : 0),
  );
}

/** Contiguous slots of one shard per shard, for creating a cluster. */
export function initialRanges(shards: number): [number, number][] {
  const ranges: [number, number][] = [];
  let next = 0;
  for (const quota of quotas(shards)) {
    ranges.push([next, next + quota - 1]);
    next += quota;
  }
  return ranges;
}

export interface SlotMove {
  from: number;
  to: number;
  /** Ascending. */
  slots: number[];
}

/**
 * The next move: from a leaving shard (index >= `shards`) or the shard with the largest
 * surplus, to the shard with the largest deficit; the donor's highest slots, at most
 * `maxSlots`. Null when every shard owns its quota and no leaving shard owns anything.
 * `owned` maps a shard to the slots it owns (shards absent own nothing); `eligible`
 * limits the recipients (e.g. shards whose replicas are attached).
 */
export function nextMove(
  owned: ReadonlyMap<number, readonly number[]>,
  shards: number,
  maxSlots: number,
  eligible: (shard: number) => boolean = () => true,
): SlotMove | null {
  const quota = quotas(shards);
  const count = (shard: number) => owned.get(shard)?.length ?? 0;
  const surplus = (shard: number) => count(shard) - (shard < shards ? quota[shard]! : 0);
  const donors = [...new Set([...owned.keys()])]
    .filter((shard) => surplus(shard) > 0)
    .sort((a, b) => Number(b >= shards) - Number(a >= shards) || surplus(b) - surplus(a) || a - b);
  const recipients = quota
    .map((_, shard) => shard)
    .filter((shard) => surplus(shard) < 0 && eligible(shard))
    .sort((a, b) => surplus(a) - surplus(b) || a - b);
  const from = donors[0];
  const to = recipients[0];
  if (from === undefined || to === undefined) return null;
  const size = Math.min(surplus(from), -surplus(to), maxSlots);
  const slots = [...owned.get(from)!].sort((a, b) => a - b).slice(-size);
  return { from, to, slots };
}
