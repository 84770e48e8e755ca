import { expect } from 'chai';
import { partitionOf, selectNewest } from '../../../dataplane/src/backfill/select.ts';
import type { ListedBlob } from '../../../dataplane/src/blob/store.ts';

async function* listing(blobs: ListedBlob[]): AsyncIterable<ListedBlob> {
  for (const blob of blobs) yield await Promise.resolve(blob);
}

const key = (n: number) => n.toString(16).padStart(32, '0');

/** The rule, written the obvious way: sort newest first, take while it fits. */
function obvious(blobs: ListedBlob[], maxBytes: number): string[] {
  const sorted = [...blobs].sort(
    (a, b) => (b.modifiedMs ?? 0) - (a.modifiedMs ?? 0) || (a.key < b.key ? -1 : 1),
  );
  const chosen: string[] = [];
  let used = 0;
  for (const blob of sorted) {
    if (used + blob.size > maxBytes) break;
    used += blob.size;
    chosen.push(blob.key);
  }
  return chosen;
}

describe('backfill selection', () => {
  it('takes the newest blobs while they fit, stopping at the first that does not', async () => {
    const blobs = [
      { key: key(1), size: 40, modifiedMs: 3_000 },
      { key: key(2), size: 50, modifiedMs: 5_000 },
      { key: key(3), size: 10, modifiedMs: 1_000 },
      { key: key(4), size: 30, modifiedMs: 4_000 },
    ];
    // 50 + 30 fit in 100; the next newest (40) does not, and the older 10 is not taken.
    const chosen = await selectNewest(listing(blobs), 100);
    expect(chosen.map((blob) => blob.key)).to.deep.equal([key(2), key(4)]);
  });

  it('agrees with sorting everything, for many random listings and budgets', async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 200; round++) {
      const blobs = Array.from({ length: Math.floor(random() * 60) }, (_, i) => ({
        key: key(round * 1000 + i),
        size: 1 + Math.floor(random() * 100),
        // Few distinct times: ties are ordered by key.
        ...(random() < 0.1 ? {} : { modifiedMs: Math.floor(random() * 20) * 1000 }),
      }));
      const budget = Math.floor(random() * 2000);
      const chosen = await selectNewest(listing(blobs), budget);
      expect(
        chosen.map((blob) => blob.key),
        `round ${round}`,
      ).to.deep.equal(obvious(blobs, budget));
    }
  });

  it('chooses nothing for a budget below the newest blob, and everything for a large one', async () => {
    const blobs = [
      { key: key(1), size: 10, modifiedMs: 2 },
      { key: key(2), size: 20, modifiedMs: 1 },
    ];
    expect(await selectNewest(listing(blobs), 9)).to.deep.equal([]);
    expect((await selectNewest(listing(blobs), 1e12)).map((blob) => blob.key)).to.deep.equal([
      key(1),
      key(2),
    ]);
  });

  it('splits keys evenly into partitions that cover them all once', () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      const md5ish = ((i * 2654435761) >>> 0).toString(16).padStart(8, '0') + '0'.repeat(24);
      counts[partitionOf(md5ish, 3)]! += 1;
    }
    expect(counts.reduce((a, b) => a + b)).to.equal(3000);
    for (const count of counts) expect(count).to.be.within(800, 1200);
  });
});
