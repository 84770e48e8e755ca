import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { REPO_ROOT } from '../../harness/dataplane.ts';
import { metricSumOver, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;
const RUNS = 50;

/** A GET that reads its first bytes, then stops reading until `finish` is called. */
async function slowReader(url: string): Promise<{ finish(): Promise<string> }> {
  const response = await fetch(url);
  if (response.status !== 200) return { finish: () => Promise.resolve(String(response.status)) };
  const reader = response.body!.getReader();
  await reader.read();
  return {
    async finish() {
      try {
        while (!(await reader.read()).done);
        return 'complete';
      } catch {
        return 'cut';
      }
    },
  };
}

/** A whole GET read to its end: its status, or 'cut' when the transfer broke. */
async function readWhole(url: string, headers: Record<string, string> = {}): Promise<string> {
  try {
    const response = await fetch(url, { headers });
    await response.arrayBuffer();
    return String(response.status);
  } catch {
    return 'cut';
  }
}

describe('DELETE sticks across processes (50 races with fills, slow readers, uploads and hot copies)', function () {
  this.timeout(900_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[];

  before(async () => {
    stack = await startProductionStack();
    // The longest hot-tier TTL allowed: a hot copy that outlived a DELETE would still be
    // there at the checks below, not expire by luck.
    planes = await Promise.all(
      [0, 1, 2].map(() => stack.spawn({ BLOBCACHE_HOT_TTL_MS: '600000' })),
    );
  });
  after(async () => {
    await stack?.stop();
  });

  /** Every process answers 404 for `key` on GET and HEAD, and lists it as missing. */
  async function expectGoneEverywhere(key: string, when: string): Promise<void> {
    for (const [index, plane] of planes.entries()) {
      const url = `${plane.url}/v1/blobs/${key}`;
      const got = await fetch(url);
      await got.arrayBuffer();
      expect(got.status, `GET on process ${index} ${when}`).to.equal(404);
      expect((await fetch(url, { method: 'HEAD' })).status, `HEAD ${when}`).to.equal(404);
      const missing = await fetch(`${plane.url}/v1/blobs/missing`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([key]),
      });
      expect(await missing.json(), `/missing on process ${index} ${when}`).to.deep.equal([key]);
    }
    expect(await stack.cluster.exists(`bc:{${key}}:m`), `manifest in Redis ${when}`).to.equal(0);
    expect(await stack.store.head(key), `object in S3 ${when}`).to.equal(null);
  }

  it('never serves a blob, keeps it in Redis or leaves it in S3 after the 204', async () => {
    const keys: string[] = [];
    let readersInFlight = 0;
    for (let run = 0; run < RUNS; run++) {
      const blob = blobOf(6 * MiB + run * 4099, 7_000 + run);
      const key = md5(blob);
      keys.push(key);
      const urlOn = (plane: SpawnedDataPlane) => `${plane.url}/v1/blobs/${key}`;
      const scenario = (['fill', 'upload', 'hot'] as const)[run % 3];
      if (scenario === 'fill') {
        // Only in S3: every read below is a miss that fills (or waits for the fill).
        await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
      } else {
        const put = await fetch(urlOn(planes[run % 3]!), { method: 'PUT', body: blob });
        expect(put.status).to.equal(201);
        if (scenario === 'hot') {
          for (const plane of planes) await readWhole(urlOn(plane));
        }
      }
      // The slow reader goes first: on a miss it is the filler, on a hit its copy into the
      // hot tier waits for it to read on, long after the DELETE.
      const slow = await slowReader(urlOn(planes[(run + 2) % 3]!));
      const readers = [
        ...planes.map((plane) => readWhole(urlOn(plane))),
        readWhole(urlOn(planes[run % 3]!), { range: 'bytes=1000-2000000' }),
      ];
      let settled = 0;
      for (const reader of readers) void reader.then(() => (settled += 1));
      await sleep(Math.floor(Math.random() * 6));
      const deleted = await fetch(urlOn(planes[(run + 1) % 3]!), { method: 'DELETE' });
      expect(deleted.status).to.equal(204);
      if (settled < readers.length) readersInFlight += 1;
      await expectGoneEverywhere(key, `right after the 204 (run ${run}, ${scenario})`);
      // Reads that started before the DELETE may finish (or be cut); none may bring it back.
      await Promise.all([...readers, slow.finish()]);
      await expectGoneEverywhere(key, `once the reads under way ended (run ${run}, ${scenario})`);
    }
    for (const plane of planes) await waitForDrain(plane.url);
    for (const key of keys) {
      await expectGoneEverywhere(key, 'after the journal drained');
    }
    // The races did happen: reads were under way at DELETEs, and fills and uploads were
    // stopped by them (as their metrics tell).
    const sum = (name: string, labels: string) =>
      metricSumOver(
        planes.map((plane) => plane.url),
        name,
        labels,
      );
    const fillsStopped = await sum('blobcache_fills_total', 'result="deleted"');
    const uploadsStopped = await sum('blobcache_journal_uploads_total', 'result="deleted"');
    console.log(
      `      ${RUNS} runs: reads still under way at ${readersInFlight} DELETEs; fills refused by a DELETE: ${fillsStopped}; uploads stopped by one: ${uploadsStopped}`,
    );
    // In every third run the slow reader is the filler, stalled across the DELETE.
    expect(fillsStopped).to.be.at.least(10);
    expect(readersInFlight).to.be.at.least(5);
  });

  it('is stated in the README in one sentence, which this test checks', async () => {
    const readme = await readFile(`${REPO_ROOT}/README.md`, 'utf8');
    expect(readme).to.include(
      'After a `DELETE` is answered `204`, no read that starts later, on any process, finds the blob in any tier, until it is uploaded again.',
    );
  });
});
