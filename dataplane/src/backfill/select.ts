import type { ListedBlob } from '../blob/store.ts';

/** A blob chosen for the backfill: its key, size and age. */
export interface Candidate {
  key: string;
  size: number;
  modifiedMs: number;
}

/** True when `a` comes after `b` newest first (older; on equal times, the larger key). */
function older(a: Candidate, b: Candidate): boolean {
  return a.modifiedMs < b.modifiedMs || (a.modifiedMs === b.modifiedMs && a.key > b.key);
}

/**
 * The most recent blobs of a listing whose sizes add up to at most `maxBytes`: newest
 * first, stopping at the first blob that does not fit (so every blob left out is older
 * than every blob chosen). Blobs without a modification time count as the oldest.
 *
 * Every partition of a backfill computes the same choice from the same listing, so
 * together they load exactly it. Memory holds the chosen blobs only: a min-heap drops the
 * oldest while the total is over the budget, and nothing older than a dropped blob is
 * taken afterwards.
 */
export async function selectNewest(
  listing: AsyncIterable<ListedBlob>,
  maxBytes: number,
): Promise<Candidate[]> {
  const heap = new OldestFirstHeap();
  let total = 0;
  let cutoff: Candidate | undefined;
  for await (const blob of listing) {
    const candidate = { key: blob.key, size: blob.size, modifiedMs: blob.modifiedMs ?? 0 };
    if (cutoff !== undefined && !older(cutoff, candidate)) continue;
    heap.push(candidate);
    total += candidate.size;
    while (total > maxBytes) {
      const dropped = heap.pop()!;
      total -= dropped.size;
      if (cutoff === undefined || older(cutoff, dropped)) cutoff = dropped;
    }
  }
  return heap.drain().reverse();
}

/** Which of `count` partitions owns `key` (keys are uniform MD5s: by their first bits). */
export function partitionOf(key: string, count: number): number {
  return Number.parseInt(key.slice(0, 8), 16) % count;
}

/** A binary heap of candidates, the oldest on top. */
class OldestFirstHeap {
  private readonly items: Candidate[] = [];

  push(item: Candidate): void {
    const { items } = this;
    items.push(item);
    for (let at = items.length - 1; at > 0;) {
      const parent = (at - 1) >> 1;
      if (!older(items[at]!, items[parent]!)) break;
      [items[at], items[parent]] = [items[parent]!, items[at]!];
      at = parent;
    }
  }

  pop(): Candidate | undefined {
    const { items } = this;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let at = 0; ;) {
      const left = 2 * at + 1;
      const right = left + 1;
      let oldest = at;
      if (left < items.length && older(items[left]!, items[oldest]!)) oldest = left;
      if (right < items.length && older(items[right]!, items[oldest]!)) oldest = right;
      if (oldest === at) break;
      [items[at], items[oldest]] = [items[oldest]!, items[at]!];
      at = oldest;
    }
    return top;
  }

  /** Empties the heap, oldest first. */
  drain(): Candidate[] {
    const out: Candidate[] = [];
    for (let item = this.pop(); item !== undefined; item = this.pop()) out.push(item);
    return out;
  }
}
