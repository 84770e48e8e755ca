import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { get, type ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GeneratedBlob, blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { metricSumOver, metricValue } from '../../harness/production-helpers.ts';
import {
  BUCKET,
  s3Client,
  startProductionStack,
  type ProductionStack,
} from '../../harness/production.ts';
import { mib, rss, stalledGet } from '../../harness/stalled-readers.ts';

const MiB = 1024 * 1024;

/** A GET that tells when its first body bytes came, and what it got in the end. */
interface Reader {
  firstBytes: Promise<void>;
  done: Promise<{ status: number; md5: string; size: number } | 'cut'>;
  abort(): void;
}

/** A GET over a connection of its own (node:http: cheaper than fetch for 6 GB in one test). */
function startReader(url: string, onBytes?: (received: number) => void): Reader {
  let first!: () => void;
  const firstBytes = new Promise<void>((resolve) => (first = resolve));
  let req: ClientRequest | undefined;
  const done = new Promise<{ status: number; md5: string; size: number } | 'cut'>((resolve) => {
    req = get(url, { agent: false }, (res) => {
      const hash = createHash('md5');
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size === 0) first();
        size += chunk.length;
        hash.update(chunk);
        onBytes?.(size);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, md5: hash.digest('hex'), size }));
      res.on('error', () => resolve('cut'));
      res.on('aborted', () => resolve('cut'));
    });
    req.on('error', () => resolve('cut'));
  });
  return { firstBytes, done, abort: () => req?.destroy() };
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

describe('cold start: one fill per blob, readers streaming behind it (real Redis Cluster and S3)', function () {
  this.timeout(300_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[];

  before(async () => {
    stack = await startProductionStack();
    planes = await Promise.all([0, 1, 2].map(() => stack.spawn()));
  });
  after(async () => {
    await stack?.stop();
  });

  const urlOf = (key: string, plane: SpawnedDataPlane) => `${plane.url}/v1/blobs/${key}`;
  const inS3Only = async (seed: number): Promise<{ key: string; size: number }> => {
    const blob = new GeneratedBlob(64 * MiB, seed);
    const key = blob.key();
    await stack.store.put(blob.stream(), { key, size: blob.size });
    return { key, size: blob.size };
  };
  const sum = (name: string, labels: string, on = planes) =>
    metricSumOver(
      on.map((plane) => plane.url),
      name,
      labels,
    );

  it('serves 100 readers over 3 processes from one S3 GET, every one getting first bytes before the fill ends', async () => {
    const { key, size } = await inS3Only(1301);
    const filledBefore = await sum('blobcache_fills_total', 'result="filled"');
    // S3's answer is held after 16 MiB: the fill cannot end until it is released.
    const held = stack.proxy.hold(key, 16 * MiB);
    const started = Date.now();
    const firstAt: number[] = [];
    const readers = Array.from({ length: 100 }, (_, i) => {
      const reader = startReader(urlOf(key, planes[i % 3]!));
      void reader.firstBytes.then(() => firstAt.push(Date.now() - started));
      return reader;
    });
    await Promise.all(readers.map((reader) => reader.firstBytes));
    // Every reader has bytes, and the fill has not ended: nothing is published yet.
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'published').to.equal(0);
    expect(await stack.cluster.hget(`bc:{${key}}:fill`, 'state')).to.equal('running');
    held.release();
    const results = await Promise.all(readers.map((reader) => reader.done));
    const lastAt = Date.now() - started;
    expect(results.filter((result) => result === 'cut')).to.deep.equal([]);
    for (const result of results) expect(result).to.deep.equal({ status: 200, md5: key, size });
    expect(stack.proxy.count('GET', key)).to.equal(1);
    expect((await sum('blobcache_fills_total', 'result="filled"')) - filledBefore).to.equal(1);
    console.log(
      `      median first bytes after ${median(firstAt)} ms (S3 held at 16 MiB), all done after ${lastAt} ms`,
    );
  });

  it('runs the fill to its end when the first client leaves after 1 MiB', async () => {
    const { key, size } = await inS3Only(1302);
    const held = stack.proxy.hold(key, 8 * MiB);
    let gotOneMiB!: () => void;
    const oneMiB = new Promise<void>((resolve) => (gotOneMiB = resolve));
    const first = startReader(urlOf(key, planes[0]!), (received) => {
      if (received >= MiB) gotOneMiB();
    });
    await oneMiB;
    first.abort();
    expect(await first.done).to.equal('cut');
    await eventually('the data plane to see its client leave', () =>
      Promise.resolve(
        planes[0]!.logs.some(
          (line) => line.message === 'Stopped streaming: the client went away' && line.key === key,
        ),
      ),
    );
    // The fill goes on without its client; 99 readers join it while S3 is still held.
    const readers = Array.from({ length: 99 }, (_, i) => startReader(urlOf(key, planes[i % 3]!)));
    await Promise.all(readers.map((reader) => reader.firstBytes));
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'published').to.equal(0);
    held.release();
    for (const result of await Promise.all(readers.map((reader) => reader.done)))
      expect(result).to.deep.equal({ status: 200, md5: key, size });
    expect(stack.proxy.count('GET', key)).to.equal(1);
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'published').to.equal(1);
  });

  it('keeps the fill lease while a fill outlasts it, renewing it', async () => {
    const shortLease = await Promise.all(
      [0, 1, 2].map(() => stack.spawn({ BLOBCACHE_FILL_LEASE_MS: '1500' })),
    );
    const { key, size } = await inS3Only(1303);
    const held = stack.proxy.hold(key, 8 * MiB);
    const readers = Array.from({ length: 100 }, (_, i) =>
      startReader(urlOf(key, shortLease[i % 3]!)),
    );
    await held.reached;
    const leaseKey = `bc:{${key}}:lease`;
    const holder = await stack.cluster.get(leaseKey);
    expect(holder).to.be.a('string');
    // Each renewal sets the 1.5 s expiry again: watch it go back up, three times, with the
    // same holder all along (an unrenewed lease would have expired before the second). Not
    // shorter: renewals come every third of the lease, and the filler's process, serving 100
    // readers on two shared cores, was once late by more than two thirds of 600 ms.
    let renewals = 0;
    let lastTtl = Infinity;
    const holders = new Set<string | null>();
    await eventually(
      'three renewals of the fill lease',
      async () => {
        const [ttl, current] = await Promise.all([
          stack.cluster.pttl(leaseKey),
          stack.cluster.get(leaseKey),
        ]);
        holders.add(current);
        if (ttl > lastTtl) renewals += 1;
        lastTtl = ttl;
        return renewals >= 3;
      },
      { intervalMs: 20, timeoutMs: 60_000 },
    );
    expect([...holders]).to.deep.equal([holder]);
    held.release();
    for (const result of await Promise.all(readers.map((reader) => reader.done)))
      expect(result).to.deep.equal({ status: 200, md5: key, size });
    expect(stack.proxy.count('GET', key)).to.equal(1);
    await Promise.all(shortLease.map((plane) => plane.stop()));
  });

  it('serves a corrupt S3 object to nobody as a complete transfer, and caches none of it', async () => {
    // 16 chunks: readers stream behind the fill, from its window and from Redis, in every
    // process, as with a larger blob; the damage shows only once the last byte is hashed.
    const blob = blobOf(16 * MiB, 1304);
    const key = md5(blob);
    const damaged = Buffer.from(blob);
    damaged[10 * MiB] = damaged[10 * MiB]! ^ 0x10;
    await s3Client(stack.s3.endpoint).send(
      new PutObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key), Body: damaged }),
    );
    const corruptBefore = await sum('blobcache_fills_total', 'result="corrupt"');
    // S3 held until every reader streams behind the one fill: all of them see it fail.
    const held = stack.proxy.hold(key, 8 * MiB);
    const readers = Array.from({ length: 100 }, (_, i) => startReader(urlOf(key, planes[i % 3]!)));
    await Promise.all(readers.map((reader) => reader.firstBytes));
    held.release();
    const results = await Promise.all(readers.map((reader) => reader.done));
    // Every transfer cut (none complete, none ended short as if whole), nothing cached.
    expect(results.filter((result) => result !== 'cut')).to.deep.equal([]);
    expect(await stack.cluster.exists(`bc:{${key}}:m`), 'published').to.equal(0);
    expect((await sum('blobcache_fills_total', 'result="corrupt"')) - corruptBefore).to.equal(1);
  });

  it('never slows a fill for readers that stop reading, and holds them within the read-ahead budget', async () => {
    const plane = await stack.spawn({ BLOBCACHE_READ_AHEAD_BYTES: '16Mi' });
    const blob = new GeneratedBlob(32 * MiB, 1305);
    const key = blob.key();
    await stack.store.put(blob.stream(), { key, size: blob.size });
    const before = await rss(plane.child.pid!);
    const stalled: Socket[] = [];
    for (let i = 0; i < 100; i++) stalled.push(await stalledGet(plane.url, key));
    // Nobody reads on, yet the fill publishes the whole blob.
    await eventually('the fill to publish', async () =>
      (await stack.cluster.exists(`bc:{${key}}:m`)) === 1 ? true : null,
    );
    const during = await rss(plane.child.pid!);
    const readAhead = await metricValue(plane.url, 'blobcache_read_ahead_bytes');
    console.log(
      `      100 stalled readers behind a fill of 32 MiB: RSS ${mib(before)} -> ${mib(during)} (+${mib(during - before)}), read-ahead held ${mib(readAhead)}`,
    );
    expect(readAhead).to.be.at.most(16 * MiB);
    // The budget, plus per connection what went through before its socket buffers filled
    // (docs/decisions/0018), not a copy of the blob per reader.
    expect(during - before).to.be.below((16 + 100 * 2) * MiB);
    for (const socket of stalled) socket.destroy();
    await eventually('the read-ahead budget to be given back', async () =>
      (await metricValue(plane.url, 'blobcache_read_ahead_bytes')) === 0 ? true : null,
    );
    const whole = startReader(urlOf(key, plane));
    expect(await whole.done).to.deep.equal({ status: 200, md5: key, size: blob.size });
    await plane.stop();
  });

  it('streams a miss to a reader on the filling process before Redis has its first chunk, ending it only once verified', async () => {
    const blob = blobOf(4 * MiB + 7, 1307);
    const key = md5(blob);
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
    // S3 stops a quarter into the first chunk (1 MiB): a reader waiting for staged chunks
    // would get nothing until the hold is released.
    const held = stack.proxy.hold(key, MiB / 4);
    let received = 0;
    const reader = startReader(urlOf(key, planes[2]!), (size) => (received = size));
    const gotFirstBytes = await Promise.race([
      reader.firstBytes.then(() => true),
      sleep(20_000).then(() => false),
    ]);
    if (!gotFirstBytes) held.release();
    expect(gotFirstBytes, 'first bytes within 20 s while S3 is held').to.be.true;
    const uploadId = await eventually('the fill record', () =>
      stack.cluster.hget(`bc:{${key}}:fill`, 'up'),
    );
    expect(await stack.cluster.exists(`bc:{${key}}:c:${uploadId}:0`), 'chunk 0 staged').to.equal(0);
    // The proxy passes the piece that crosses its hold, so a little more than a quarter.
    expect(received, 'bytes before the hold was released').to.be.above(0).and.below(MiB);
    held.release();
    expect(await reader.done).to.deep.equal({ status: 200, md5: key, size: blob.length });
    expect(stack.proxy.count('GET', key)).to.equal(1);
  });

  it('fills the whole blob, with one S3 GET, to serve a range of a cold one', async () => {
    const blob = blobOf(5 * MiB + 11, 1306);
    const key = md5(blob);
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
    const response = await fetch(urlOf(key, planes[1]!), { headers: { range: 'bytes=100-199' } });
    expect(response.status).to.equal(206);
    expect(response.headers.get('x-cache')).to.equal('miss');
    expect(Buffer.from(await response.arrayBuffer()).equals(blob.subarray(100, 200))).to.be.true;
    await eventually('the whole blob to be cached', async () =>
      (await stack.cluster.exists(`bc:{${key}}:m`)) === 1 ? true : null,
    );
    expect(stack.proxy.count('GET', key)).to.equal(1);
  });
});
