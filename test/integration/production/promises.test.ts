import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { Readable } from 'node:stream';
import { blobOf, digestOf, GeneratedBlob, md5 } from '../../harness/blobs.ts';
import { residentSet, type SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { problemOf } from '../../harness/http.ts';
import { metricSum, metricValue, waitForDrain } from '../../harness/production-helpers.ts';
import {
  BUCKET,
  s3Client,
  startProductionStack,
  type ProductionStack,
} from '../../harness/production.ts';

const MiB = 1024 * 1024;

/** The README's promises, each on the production tiers (real Redis Cluster and S3 server). */
describe('production tiers keep the README promises', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  let plane: SpawnedDataPlane;

  before(async () => {
    stack = await startProductionStack();
    plane = await stack.spawn({
      BLOBCACHE_UPLOAD_RETRY_MAX_MS: '1000',
      BLOBCACHE_NEGATIVE_CACHE_MS: '60000',
      BLOBCACHE_MAX_BLOB_BYTES: '1Gi',
    });
  });
  after(async () => {
    await stack?.stop();
  });

  const url = (key: string, on = plane) => `${on.url}/v1/blobs/${key}`;
  const put = (blob: Buffer, headers: Record<string, string> = {}) =>
    fetch(url(md5(blob)), { method: 'PUT', body: blob, headers });
  /** Chunk keys of a blob as Redis holds them, in order. */
  const chunkKeys = async (key: string): Promise<string[]> => {
    const manifest = await stack.cluster.hgetall(`bc:{${key}}:m`);
    return Array.from(
      { length: Number(manifest.n) },
      (_, i) => `bc:{${key}}:c:${manifest.up}:${i}`,
    );
  };

  it('continues a read from S3 when part of the cached blob is gone, and fills it again', async () => {
    // Larger than the hot tier admits, so every read below goes to Redis.
    const blob = blobOf(9 * MiB + 123, 701);
    const key = md5(blob);
    expect((await put(blob)).status).to.equal(201);
    await waitForDrain(plane.url);
    const [, second] = await chunkKeys(key);
    await stack.cluster.del(second!);
    const response = await fetch(url(key));
    expect(response.headers.get('x-cache')).to.equal('hit');
    expect(Buffer.from(await response.arrayBuffer()).equals(blob)).to.be.true;
    expect(await metricSum(plane.url, 'blobcache_fills_total', 'result="chunk-missing"')).to.equal(
      1,
    );
    // The broken copy was dropped; the next read fills a whole one.
    expect(await stack.cluster.exists(`bc:{${key}}:m`)).to.equal(0);
    const again = await fetch(url(key));
    expect(again.headers.get('x-cache')).to.equal('miss');
    expect(Buffer.from(await again.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('never completes a read continued from a damaged S3 object', async () => {
    const blob = blobOf(3 * MiB + 7, 702);
    const key = md5(blob);
    expect((await put(blob)).status).to.equal(201);
    await waitForDrain(plane.url);
    const damaged = Buffer.from(blob);
    damaged[3 * MiB] = damaged[3 * MiB]! ^ 0x01;
    await s3Client(stack.s3.endpoint).send(
      new PutObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key), Body: damaged }),
    );
    const [, second] = await chunkKeys(key);
    await stack.cluster.del(second!);
    const response = await fetch(url(key));
    expect(response.status).to.equal(200);
    let failure: unknown;
    await response.arrayBuffer().catch((error: unknown) => (failure = error));
    expect(failure, 'the transfer must break, not end').to.be.instanceOf(Error);
  });

  it('serves ranges of a cached blob from Redis', async () => {
    const blob = blobOf(3 * MiB + 99, 703);
    const key = md5(blob);
    expect((await put(blob)).status).to.equal(201);
    for (const [range, start, end] of [
      ['bytes=100-2100000', 100, 2_100_000],
      ['bytes=-5000', blob.length - 5000, blob.length - 1],
      [`bytes=${MiB - 1}-${MiB}`, MiB - 1, MiB],
    ] as const) {
      const response = await fetch(url(key), { headers: { range } });
      expect(response.status, range).to.equal(206);
      expect(response.headers.get('x-cache')).to.equal('hit');
      expect(response.headers.get('content-range')).to.equal(
        `bytes ${start}-${end}/${blob.length}`,
      );
      expect(Buffer.from(await response.arrayBuffer()).equals(blob.subarray(start, end + 1))).to.be
        .true;
    }
  });

  it('answers a Sync upload 503 while S3 is down, and the blob still reaches S3', async () => {
    await stack.s3.stop();
    const blob = blobOf(MiB + 1, 704);
    const response = await put(blob, { 'Blobcache-Durability': 'Sync' });
    expect(response.status).to.equal(503);
    expect(response.headers.get('retry-after')).to.match(/^\d+$/);
    expect((await problemOf(response)).code).to.equal('service-unavailable');
    await stack.s3.start();
    await waitForDrain(plane.url);
    expect((await stack.store.head(md5(blob)))?.size).to.equal(blob.length);
  });

  it('remembers that S3 lacks a blob (one S3 request), until a PUT of it', async () => {
    const blob = blobOf(50_000, 705);
    const key = md5(blob);
    expect((await fetch(url(key))).status).to.equal(404);
    // Stored behind the cache's back: within the negative-cache time it stays unseen.
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
    const before = stack.proxy.requests.length;
    expect((await fetch(url(key))).status).to.equal(404);
    expect((await fetch(url(key), { method: 'HEAD' })).status).to.equal(404);
    expect(stack.proxy.requests.length - before, 'requests to S3').to.equal(0);
    expect(await stack.cluster.exists(`bc:{${key}}:absent`)).to.equal(1);
    expect((await put(blob)).status).to.equal(201);
    expect(await stack.cluster.exists(`bc:{${key}}:absent`)).to.equal(0);
    expect((await fetch(url(key))).status).to.equal(200);
  });

  it('lists exactly the keys stored in no tier as missing', async () => {
    const inRedis = blobOf(10_000, 706);
    const onlyInS3 = blobOf(10_001, 707);
    const nowhere = md5(blobOf(10_002, 708));
    expect((await put(inRedis)).status).to.equal(201);
    await stack.store.put(Readable.from([onlyInS3], { objectMode: false }), { key: md5(onlyInS3) });
    const response = await fetch(`${plane.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([md5(inRedis), nowhere, md5(onlyInS3), nowhere]),
    });
    expect(await response.json()).to.deep.equal([nowhere]);
  });

  it('keeps a hot-tier copy no longer than BLOBCACHE_HOT_TTL_MS', async () => {
    const hotPlane = await stack.spawn({ BLOBCACHE_HOT_TTL_MS: '1500' });
    const blob = blobOf(200_000, 709);
    const key = md5(blob);
    expect((await put(blob)).status).to.equal(201);
    await waitForDrain(plane.url);
    await (await fetch(url(key, hotPlane))).arrayBuffer();
    expect(await metricValue(hotPlane.url, 'blobcache_hot_tier_bytes')).to.equal(blob.length);
    // Gone from Redis and S3 behind the cache's back (no DELETE, so no invalidation).
    for (const name of [`bc:{${key}}:m`, ...(await chunkKeys(key))]) await stack.cluster.del(name);
    await stack.store.delete(key);
    const removedAt = Date.now();
    const hit = await fetch(url(key, hotPlane));
    expect(hit.status, 'served from the hot tier alone').to.equal(200);
    await hit.arrayBuffer();
    await eventually(
      'the hot copy to expire',
      async () => ((await fetch(url(key, hotPlane))).status === 404 ? true : null),
      { intervalMs: 50 },
    );
    expect(Date.now() - removedAt).to.be.below(1500 + 1000);
  });

  it('stays ready while S3 is down: uploads are acknowledged, what Redis holds is served', async () => {
    expect((await fetch(`${plane.url}/readyz`)).status).to.equal(200);
    await stack.s3.stop();
    try {
      // Not ready would take every pod out of its Service at once (they share the one S3).
      expect((await fetch(`${plane.url}/readyz`)).status).to.equal(200);
      const blob = blobOf(256 * 1024 + 5, 741);
      expect((await put(blob)).status).to.equal(201);
      const read = await fetch(url(md5(blob)));
      expect(read.status).to.equal(200);
      expect(Buffer.from(await read.arrayBuffer()).equals(blob)).to.equal(true);
    } finally {
      await stack.s3.start();
    }
    expect((await fetch(`${plane.url}/readyz`)).status).to.equal(200);
  });

  it('streams large blobs to many readers at once without holding them in memory', async () => {
    const blob = new GeneratedBlob(160 * MiB, 710);
    const key = blob.key();
    const uploaded = await fetch(url(key), {
      method: 'PUT',
      body: Readable.toWeb(blob.stream()) as ReadableStream,
      duplex: 'half',
    });
    expect(uploaded.status).to.equal(201);
    const pid = plane.child.pid!;
    const before = (await residentSet(pid)).currentBytes;
    let peak = before;
    const sampler = setInterval(() => {
      void residentSet(pid).then(({ currentBytes }) => (peak = Math.max(peak, currentBytes)));
    }, 50);
    try {
      const digests = await Promise.all(
        Array.from({ length: 8 }, async () => digestOf((await fetch(url(key))).body!)),
      );
      for (const digest of digests) expect(digest).to.deep.equal({ md5: key, size: blob.size });
    } finally {
      clearInterval(sampler);
    }
    const grewMiB = (peak - before) / MiB;
    console.log(`      8 readers of a 160 MiB blob: resident set grew ${grewMiB.toFixed(0)} MiB`);
    // Eight whole copies would be 1280 MiB; what a reader holds is chunks in flight and
    // socket buffers, a few MiB each (plus garbage not yet collected).
    expect(grewMiB).to.be.below(2 * 160);
  });

  /**
   * Runs `check` with the suite's long-lived process paused: it reads the same journal and
   * could take the upload a test means the process it stops to hold.
   */
  const withSuitePlanePaused = async (check: () => Promise<void>): Promise<void> => {
    plane.child.kill('SIGSTOP');
    try {
      await check();
    } finally {
      plane.child.kill('SIGCONT');
    }
  };

  it('on SIGTERM lets an upload to S3 under way finish before it exits', () =>
    withSuitePlanePaused(async () => {
      const draining = await stack.spawn();
      const blob = new GeneratedBlob(48 * MiB, 711);
      const key = blob.key();
      const uploaded = await fetch(url(key, draining), {
        method: 'PUT',
        body: Readable.toWeb(blob.stream()) as ReadableStream,
        duplex: 'half',
      });
      expect(uploaded.status).to.equal(201);
      // Its uploader holds the blob's upload lease while it copies it to S3.
      await eventually(
        'the copy to S3 to start',
        async () => ((await stack.cluster.zcard(`bc:{${key}}:uploads`)) > 0 ? true : null),
        { intervalMs: 5 },
      );
      expect(await draining.stop('SIGTERM')).to.equal(0);
      const troubles = draining.logs.filter(
        (line) => line.level === 'warn' || line.level === 'error',
      );
      expect((await stack.store.head(key))?.size, JSON.stringify(troubles)).to.equal(blob.size);
      expect(await stack.cluster.hget(`bc:{${key}}:m`, 'state')).to.equal('cached');
    }));

  it('on SIGTERM keeps retrying an upload that failed, within the shutdown grace', () =>
    withSuitePlanePaused(async () => {
      const draining = await stack.spawn({ BLOBCACHE_UPLOAD_RETRY_MAX_MS: '1000' });
      const blob = blobOf(3 * MiB + 7, 712);
      const key = md5(blob);
      const failuresAfterSignal = (): number => {
        const signalAt = draining.logs.findIndex(
          (line) => line.message === 'Draining before shutdown',
        );
        if (signalAt < 0) return 0;
        return draining.logs
          .slice(signalAt)
          .filter(
            (line) => line.message === 'Failed to upload a blob to the durable tier; will retry',
          ).length;
      };
      await stack.s3.stop();
      let exited: Promise<number | null> | undefined;
      try {
        const uploaded = await fetch(url(key, draining), { method: 'PUT', body: blob });
        expect(uploaded.status).to.equal(201);
        exited = draining.stop('SIGTERM');
        // Stopping, with S3 still down: the upload fails at least once after the signal.
        await eventually('an upload attempt to fail while stopping', () =>
          Promise.resolve(failuresAfterSignal() > 0),
        );
      } finally {
        await stack.s3.start();
      }
      expect(await exited).to.equal(0);
      expect((await stack.store.head(key))?.size).to.equal(blob.length);
      expect(await stack.cluster.hget(`bc:{${key}}:m`, 'state')).to.equal('cached');
    }));

  it('reports not ready while a shard has no node, and recovers when its nodes restart in place', async () => {
    const master = stack.redis.masters()[0]!;
    const replica = stack.redis.nodes
      .map((node) => node.port)
      .find(
        (port) =>
          port !== master && stack.redis.role(port) === 'slave' && replicaOf(port) === master,
      );
    expect(replica).to.be.a('number');
    stack.redis.kill(replica!);
    stack.redis.kill(master);
    await eventually('readiness to fail', async () =>
      (await fetch(`${plane.url}/readyz`)).status === 503 ? true : null,
    );
    // Both come back through the start script: the replica at once, the master once it
    // found its replica holds nothing to save.
    await Promise.all([stack.redis.restartInPlace(replica!), stack.redis.restartInPlace(master)]);
    await stack.redis.waitHealthy();
    await eventually('readiness to come back', async () =>
      (await fetch(`${plane.url}/readyz`)).status === 200 ? true : null,
    );
  });

  /** The port of the master that the replica on `port` follows. */
  function replicaOf(port: number): number | undefined {
    const info = stack.redis.info(port, 'replication');
    return Number(/master_port:(\d+)/.exec(info)?.[1]);
  }
});
