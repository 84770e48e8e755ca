import { expect } from 'chai';
import { request } from 'node:http';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { uploadInTwoParts } from '../../harness/http.ts';
import {
  journalLength,
  keysMatching,
  metricSum,
  metricValue,
} from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;

describe('the write-behind journal tells lost blobs from late ones', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  let plane: SpawnedDataPlane;

  before(async () => {
    stack = await startProductionStack();
    plane = await stack.spawn({ BLOBCACHE_UPLOAD_RETRY_MAX_MS: '2000' });
  });
  after(async () => {
    await stack?.stop();
  });

  it('reports a blob that vanished from Redis before S3 had it within a minute, as an error and a metric', async () => {
    await stack.s3.stop();
    const blob = blobOf(2 * MiB + 5, 601);
    const key = md5(blob);
    expect(
      (await fetch(`${plane.url}/v1/blobs/${key}`, { method: 'PUT', body: blob })).status,
    ).to.equal(201);
    // The uploader has the entry and keeps failing to reach S3.
    await eventually('a failed upload attempt', async () =>
      (await metricValue(plane.url, 'blobcache_journal_upload_failures_total')) > 0 ? true : null,
    );
    // Behind the uploader's back: the shard loses the blob (what a wiped master did).
    const keys = await keysMatching(stack.cluster, `bc:{${key}}:*`);
    expect(keys).to.include(`bc:{${key}}:m`);
    for (const name of keys) await stack.cluster.del(name);
    const lostAt = Date.now();
    await stack.s3.start();
    await eventually(
      'the lost blob to be reported',
      async () =>
        (await metricValue(plane.url, 'blobcache_journal_lost_total')) >= 1 ? true : null,
      { timeoutMs: 60_000 },
    );
    const reportedAfterMs = Date.now() - lostAt;
    expect(reportedAfterMs).to.be.below(60_000);
    const line = plane.logs.find(
      (entry) =>
        entry.message ===
        'Lost an acknowledged blob: it vanished from Redis before the durable tier had it',
    );
    expect(line).to.include({ level: 'error', key });
    await eventually('the entry to be completed', async () =>
      (await journalLength(stack.cluster)) === 0 ? true : null,
    );
    console.log(`      reported ${(reportedAfterMs / 1000).toFixed(1)} s after it was lost`);
  });

  it('completes the entry of an upload whose staged chunk vanished before publishing, at once', async () => {
    const blob = blobOf(3 * MiB, 602);
    const key = md5(blob);
    const status = await uploadInTwoParts(
      `${plane.url}/v1/blobs/${key}`,
      blob,
      2 * MiB,
      async () => {
        // Wait for the first chunks to be staged, then take one away (as an eviction would).
        const staged = await eventually(
          'a staged chunk',
          async () => {
            const chunks = await keysMatching(stack.cluster, `bc:{${key}}:c:*`);
            return chunks.length > 0 ? chunks : null;
          },
          { intervalMs: 20 },
        );
        await stack.cluster.del(staged[0]!);
      },
    );
    expect(status).to.equal(503);
    // No waiting for an abandon time: the entry is gone when the answer comes.
    expect(await journalLength(stack.cluster)).to.equal(0);
    expect(await stack.cluster.exists(`bc:{${key}}:m`)).to.equal(0);
  });

  it('completes the entry of an upload whose process died mid-stream, within seconds', async () => {
    const doomed = await stack.spawn();
    const survivor = await stack.spawn({ BLOBCACHE_JOURNAL_CLAIM_IDLE_MS: '2000' });
    const blob = blobOf(4 * MiB, 603);
    const key = md5(blob);
    const req = request(`${doomed.url}/v1/blobs/${key}`, {
      method: 'PUT',
      headers: { 'Content-Length': String(blob.length) },
    });
    req.on('error', () => undefined);
    // Several chunks' worth: the verifier holds the latest piece back until the end.
    req.write(blob.subarray(0, 3 * MiB));
    await eventually('the upload to be journaled and staging', async () => {
      const entries = await journalLength(stack.cluster);
      const chunks = (await keysMatching(stack.cluster, `bc:{${key}}:c:*`)).length;
      return entries === 1 && chunks > 0 ? true : null;
    });
    await doomed.stop('SIGKILL');
    req.destroy();
    const killedAt = Date.now();
    // Its streaming marker expires (15 s) and another process drops the entry: nothing of
    // it was acknowledged, so nothing is lost.
    await eventually(
      "the dead upload's entry to be dropped",
      async () => ((await journalLength(stack.cluster)) === 0 ? true : null),
      { timeoutMs: 60_000 },
    );
    expect(Date.now() - killedAt).to.be.below(45_000);
    // Whichever live process had the entry dropped it as abandoned, none as lost.
    let abandoned = 0;
    for (const live of [plane, survivor]) {
      abandoned += await metricSum(
        live.url,
        'blobcache_journal_uploads_total',
        'result="abandoned"',
      );
      expect(await metricValue(live.url, 'blobcache_journal_lost_total')).to.equal(
        live === plane ? 1 : 0,
      );
    }
    expect(abandoned).to.be.at.least(1);
  });
});
