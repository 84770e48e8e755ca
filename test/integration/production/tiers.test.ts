import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { GeneratedBlob, blobOf, digestOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { uploadInTwoParts } from '../../harness/http.ts';
import {
  flushRedis,
  inParallel,
  keysMatching,
  metricSum,
  metricValue,
  waitForDrain,
} from '../../harness/production-helpers.ts';
import {
  BUCKET,
  s3Client,
  startProductionStack,
  type ProductionStack,
} from '../../harness/production.ts';

const MiB = 1024 * 1024;

describe('production tiers: Redis Cluster + S3 (real servers on loopback)', function () {
  this.timeout(180_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[];

  before(async () => {
    stack = await startProductionStack();
    planes = await Promise.all(
      [0, 1, 2].map(() => stack.spawn({ BLOBCACHE_MAX_BLOB_BYTES: '1Gi' })),
    );
  });
  after(async () => {
    await stack?.stop();
  });

  const put = (plane: SpawnedDataPlane, blob: Buffer, headers: Record<string, string> = {}) =>
    fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob, headers });

  it('writes 1,000 blobs behind to S3, all readable from S3 alone once Redis is flushed', async () => {
    const blobs = Array.from({ length: 1000 }, (_, i) =>
      blobOf(1024 + ((i * 7919) % 30_000), 10_000 + i),
    );
    let started = Date.now();
    const statuses = await inParallel(
      blobs,
      16,
      async (blob, i) => (await put(planes[i % 3]!, blob)).status,
    );
    expect(statuses.filter((status) => status !== 201)).to.deep.equal([]);
    const putMs = Date.now() - started;
    await waitForDrain(planes[0]!.url);
    const drainMs = Date.now() - started;
    const inS3 = await inParallel(
      blobs,
      32,
      async (blob) => (await stack.store.head(md5(blob)))?.size,
    );
    expect(inS3).to.deep.equal(blobs.map((blob) => blob.length));
    flushRedis(stack.redis);
    started = Date.now();
    const readBack = await inParallel(blobs, 16, async (blob, i) => {
      const response = await fetch(`${planes[i % 3]!.url}/v1/blobs/${md5(blob)}`);
      const body = Buffer.from(await response.arrayBuffer());
      return (
        response.status === 200 && response.headers.get('x-cache') === 'miss' && body.equals(blob)
      );
    });
    expect(readBack.filter((ok) => !ok)).to.have.length(0);
    console.log(
      `      1,000 PUTs ${putMs} ms, all in S3 after ${drainMs} ms, 1,000 cold GETs ${Date.now() - started} ms`,
    );
  });

  it('answers Sync uploads only once S3 has the blob', async () => {
    const blob = blobOf(2 * MiB + 3, 77);
    const response = await put(planes[0]!, blob, { 'Blobcache-Durability': 'Sync' });
    expect(response.status).to.equal(201);
    expect((await stack.store.head(md5(blob)))?.size).to.equal(blob.length);
  });

  it('accepts an unkeyed POST and stores it under its MD5', async () => {
    const blob = blobOf(100_000, 78);
    const response = await fetch(`${planes[1]!.url}/v1/blobs`, { method: 'POST', body: blob });
    expect(response.status).to.equal(201);
    expect(response.headers.get('location')).to.equal(`/v1/blobs/${md5(blob)}`);
    const got = await fetch(`${planes[2]!.url}/v1/blobs/${md5(blob)}`);
    expect(got.headers.get('x-cache')).to.equal('hit');
    expect(Buffer.from(await got.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('fills once for 100 concurrent GETs of a missing blob across 3 processes (one S3 GET)', async () => {
    const blob = blobOf(4 * MiB, 79);
    const key = md5(blob);
    // Put it into S3 behind the cache's back, as if an earlier cache generation wrote it.
    await s3Client(stack.s3.endpoint).send(
      new PutObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key), Body: blob }),
    );
    const before = stack.proxy.count('GET', key);
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const response = await fetch(`${planes[i % 3]!.url}/v1/blobs/${key}`);
        return response.status === 200 && Buffer.from(await response.arrayBuffer()).equals(blob);
      }),
    );
    expect(results.every(Boolean)).to.be.true;
    expect(stack.proxy.count('GET', key) - before).to.equal(1);
    const waits = await Promise.all(
      planes.map((plane) => metricValue(plane.url, 'blobcache_fill_coalesced_waits_total')),
    );
    console.log(`      coalesced waits per process: ${waits.join(', ')}`);
    expect(waits.reduce((sum, value) => sum + value, 0)).to.be.greaterThan(0);
  });

  it('never serves corrupt S3 bytes as a hit, and reports them', async () => {
    const claimed = blobOf(300_000, 80);
    const key = md5(claimed);
    const damaged = Buffer.from(claimed);
    damaged[1000] = damaged[1000]! ^ 0xff;
    await s3Client(stack.s3.endpoint).send(
      new PutObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key), Body: damaged }),
    );
    const corruptBefore = await metricSum(
      planes[0]!.url,
      'blobcache_fills_total',
      'result="corrupt"',
    );
    for (let attempt = 0; attempt < 2; attempt++) {
      const response = await fetch(`${planes[0]!.url}/v1/blobs/${key}`);
      // The bytes stream before the digest is known, so the answer starts as a miss...
      expect(response.headers.get('x-cache'), `attempt ${attempt}`).to.equal('miss');
      // ...but the transfer is cut before its end, never completed.
      let failure: unknown;
      await response.arrayBuffer().catch((error: unknown) => (failure = error));
      expect(failure, `attempt ${attempt}: the transfer must break`).to.be.instanceOf(Error);
      // The fill counts its end, then lets go of its lease, after its readers were cut: wait
      // for that, so the next attempt starts a fill of its own instead of joining this one.
      await eventually(
        `the fill of attempt ${attempt} to end`,
        async () => (await stack.cluster.exists(`bc:{${key}}:lease`)) === 0,
        { intervalMs: 20 },
      );
    }
    expect(
      (await metricSum(planes[0]!.url, 'blobcache_fills_total', 'result="corrupt"')) -
        corruptBefore,
    ).to.equal(2);
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'cached').to.equal(0);
  });

  it('serves repeated reads from the hot tier and drops it everywhere on DELETE', async () => {
    const blob = blobOf(200_000, 85);
    const key = md5(blob);
    expect((await put(planes[0]!, blob)).status).to.equal(201);
    for (let i = 0; i < 2; i++) {
      const got = await fetch(`${planes[0]!.url}/v1/blobs/${key}`);
      expect(Buffer.from(await got.arrayBuffer()).equals(blob)).to.be.true;
    }
    const hotBytes = await metricValue(planes[0]!.url, 'blobcache_hot_tier_bytes');
    expect(hotBytes).to.be.at.least(blob.length);
    expect(
      (await fetch(`${planes[1]!.url}/v1/blobs/${key}`, { method: 'DELETE' })).status,
    ).to.equal(204);
    const deadline = Date.now() + 3_000;
    let status = 200;
    while (status !== 404 && Date.now() < deadline) {
      status = (await fetch(`${planes[0]!.url}/v1/blobs/${key}`)).status;
      if (status !== 404) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).to.equal(404);
  });

  it('DELETE wins against a fill under way', async () => {
    const blob = blobOf(8 * MiB, 81);
    const key = md5(blob);
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
    const refusedBefore = await metricSum(
      planes[0]!.url,
      'blobcache_fills_total',
      'result="deleted"',
    );
    // The fill runs whoever reads: S3's answer is held mid-object to keep it under way.
    const held = stack.proxy.hold(key, 2 * MiB);
    const reading = await fetch(`${planes[0]!.url}/v1/blobs/${key}`);
    expect(reading.headers.get('x-cache')).to.equal('miss');
    const reader = reading.body!.getReader();
    await reader.read();
    await held.reached;
    // The fill is under way: it holds the fill lease and has not published.
    expect(await stack.cluster.exists(`bc:{${key}}:lease`), 'fill lease').to.equal(1);
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'manifest').to.equal(0);
    expect(
      (await fetch(`${planes[1]!.url}/v1/blobs/${key}`, { method: 'DELETE' })).status,
    ).to.equal(204);
    held.release();
    await reader
      .read()
      .then(async function drain(step): Promise<void> {
        if (!step.done) await reader.read().then(drain);
      })
      .catch(() => undefined);
    // The fill ran to its end (or was stopped at a lease renewal) and could not publish.
    await eventually('the fill to be refused', async () =>
      (await metricSum(planes[0]!.url, 'blobcache_fills_total', 'result="deleted"')) > refusedBefore
        ? true
        : null,
    );
    for (const plane of planes)
      expect((await fetch(`${plane.url}/v1/blobs/${key}`)).status).to.equal(404);
    expect(await stack.store.head(key)).to.equal(null);
  });

  it('DELETE wins against an upload still streaming and one pending in the journal', async () => {
    const streaming = blobOf(3 * MiB, 82);
    const streamingKey = md5(streaming);
    const status = await uploadInTwoParts(
      `${planes[0]!.url}/v1/blobs/${streamingKey}`,
      streaming,
      2 * MiB,
      async () => {
        // The server has started the upload: its first chunk is staged in Redis.
        await eventually(
          'a staged chunk',
          async () => {
            const keys = await keysMatching(stack.cluster, `bc:{${streamingKey}}:c:*`);
            return keys.length > 0 ? true : null;
          },
          { intervalMs: 20 },
        );
        const response = await fetch(`${planes[1]!.url}/v1/blobs/${streamingKey}`, {
          method: 'DELETE',
        });
        expect(response.status).to.equal(204);
      },
    );
    // The upload was concurrent with the DELETE, which wins: it is not stored.
    expect(status).to.be.oneOf([200, 201]);
    const pending = blobOf(MiB, 83);
    expect((await put(planes[2]!, pending)).status).to.equal(201);
    expect(
      (await fetch(`${planes[0]!.url}/v1/blobs/${md5(pending)}`, { method: 'DELETE' })).status,
    ).to.equal(204);
    await waitForDrain(planes[0]!.url);
    for (const key of [streamingKey, md5(pending)]) {
      for (const plane of planes)
        expect((await fetch(`${plane.url}/v1/blobs/${key}`)).status, key).to.equal(404);
      expect(await stack.store.head(key), key).to.equal(null);
      expect(await stack.cluster.exists(`bc:{${key}}:m`), key).to.equal(0);
    }
  });

  it('round-trips a 600 MiB blob through Redis (above the 512 MiB value limit)', async () => {
    const blob = new GeneratedBlob(600 * MiB, 84);
    const key = blob.key();
    const uploaded = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${planes[0]!.url}/v1/blobs/${key}`,
        {
          method: 'PUT',
          headers: { 'Content-Length': String(blob.size) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      blob.stream().pipe(req);
    });
    expect(uploaded).to.equal(201);
    const response = await fetch(`${planes[1]!.url}/v1/blobs/${key}`);
    expect(response.headers.get('x-cache')).to.equal('hit');
    expect(await digestOf(response.body!)).to.deep.equal({ md5: key, size: blob.size });
    await waitForDrain(planes[0]!.url, 300_000);
    expect((await stack.store.head(key))?.size).to.equal(blob.size);
  });
});
