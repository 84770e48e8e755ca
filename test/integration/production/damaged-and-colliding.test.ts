import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { blobOf, md5, sha256Base64 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { COLLIDING_MD5, COLLIDING_PAIR } from '../../harness/md5-collision.ts';
import {
  flushRedis,
  metricSumOver,
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

/** 'complete' when the whole body arrived, 'cut' when the transfer broke, else the status. */
async function outcomeOf(request: Promise<Response>): Promise<string> {
  try {
    const response = await request;
    if (response.status !== 200 && response.status !== 206) {
      await response.arrayBuffer();
      return String(response.status);
    }
    await response.arrayBuffer();
    return 'complete';
  } catch {
    return 'cut';
  }
}

describe('production tiers: damaged S3 objects and MD5 collisions', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[];

  before(async () => {
    stack = await startProductionStack();
    planes = await Promise.all([0, 1, 2].map(() => stack.spawn()));
  });
  after(async () => {
    await stack?.stop();
  });

  const url = (key: string, plane = planes[0]!) => `${plane.url}/v1/blobs/${key}`;
  const reprDigest = (blob: Buffer) => ({ 'repr-digest': `sha-256=:${sha256Base64(blob)}:` });
  /** Puts `body` into S3 under `key` behind the cache's back (as another tool would). */
  const putIntoS3 = (key: string, body: Buffer) =>
    s3Client(stack.s3.endpoint).send(
      new PutObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key), Body: body }),
    );
  const damagedCopyOf = (blob: Buffer): Buffer => {
    const damaged = Buffer.from(blob);
    damaged[blob.length - 10] = damaged[blob.length - 10]! ^ 0x40;
    return damaged;
  };
  const sumOverPlanes = (name: string, labels: string) =>
    metricSumOver(
      planes.map((plane) => plane.url),
      name,
      labels,
    );

  it('never completes a transfer of a damaged S3 object, for anyone streaming behind its fill', async () => {
    const blob = blobOf(4 * MiB + 3, 801);
    const key = md5(blob);
    await putIntoS3(key, damagedCopyOf(blob));
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, (_, i) => outcomeOf(fetch(url(key, planes[i % 3])))),
    );
    expect(outcomes.filter((outcome) => outcome === 'complete')).to.deep.equal([]);
    // Readers that streamed behind a fill started by another reader were among them.
    const joined = await Promise.all(
      planes.map((plane) => metricValue(plane.url, 'blobcache_fill_coalesced_waits_total')),
    );
    expect(joined.reduce((sum, value) => sum + value, 0)).to.be.greaterThan(0);
    expect(await sumOverPlanes('blobcache_fills_total', 'result="corrupt"')).to.be.greaterThan(0);
    expect(await stack.cluster.exists(`bc:{${key}}:m`)).to.equal(0);
  });

  it('cuts a range of a damaged blob not in Redis before its end, and serves a range of an intact one verified', async () => {
    const damaged = blobOf(3 * MiB, 802);
    await putIntoS3(md5(damaged), damagedCopyOf(damaged));
    // The range ends long before the damage: its last byte still waits for the whole blob.
    const cut = await outcomeOf(fetch(url(md5(damaged)), { headers: { range: 'bytes=0-99' } }));
    expect(cut).to.equal('cut');

    const intact = blobOf(3 * MiB, 803);
    const key = md5(intact);
    await stack.store.put(Readable.from([intact], { objectMode: false }), { key });
    const response = await fetch(url(key), { headers: { range: 'bytes=10-1000009' } });
    expect(response.status).to.equal(206);
    expect(response.headers.get('x-cache')).to.equal('miss');
    expect(Buffer.from(await response.arrayBuffer()).equals(intact.subarray(10, 1_000_010))).to.be
      .true;
    // Read whole to serve the range, so it is cached now.
    await eventually('the range read to fill Redis', async () =>
      (await stack.cluster.exists(`bc:{${key}}:m`)) === 1 ? true : null,
    );
  });

  it('repairs a damaged S3 object when the right bytes are uploaded again', async () => {
    const blob = blobOf(2 * MiB + 11, 804);
    const key = md5(blob);
    await putIntoS3(key, damagedCopyOf(blob));
    expect(await outcomeOf(fetch(url(key)))).to.equal('cut');
    expect((await fetch(url(key), { method: 'PUT', body: blob })).status).to.equal(201);
    await waitForDrain(planes[0]!.url);
    const inS3 = await stack.store.get(key);
    expect(md5(Buffer.concat(await inS3!.stream.toArray()))).to.equal(key);
    flushRedis(stack.redis);
    const again = await fetch(url(key, planes[1]));
    expect(again.headers.get('x-cache')).to.equal('miss');
    expect(Buffer.from(await again.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('repairs an S3 object damaged where S3 cannot see it (bytes changed on its disk)', async () => {
    const blob = blobOf(MiB + 17, 805);
    const key = md5(blob);
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
    // The S3 server keeps the right ETag; only the bytes rot.
    const file = await open(
      join(stack.dir, 's3', 'data', BUCKET, stack.store.objectKey(key)),
      'r+',
    );
    await file.write(Buffer.from([blob[500]! ^ 0xff]), 0, 1, 500);
    await file.close();
    expect(await outcomeOf(fetch(url(key)))).to.equal('cut');
    expect((await fetch(url(key), { method: 'PUT', body: blob })).status).to.equal(201);
    await waitForDrain(planes[0]!.url);
    const inS3 = await stack.store.get(key);
    expect(md5(Buffer.concat(await inS3!.stream.toArray()))).to.equal(key);
  });

  it('answers identical bytes uploaded again with a correct Repr-Digest 200, never 409', async () => {
    const blob = blobOf(300_000, 806);
    const key = md5(blob);
    expect((await fetch(url(key), { method: 'PUT', body: blob })).status).to.equal(201);
    const again = await fetch(url(key, planes[1]), {
      method: 'PUT',
      body: blob,
      headers: reprDigest(blob),
    });
    expect(again.status).to.equal(200);
    expect(await again.json()).to.include({ created: false, sha256: sha256Base64(blob) });
    // The stored content's SHA-256 is known from then on, in Redis and after it.
    const got = await fetch(url(key, planes[2]));
    expect(got.headers.get('repr-digest')).to.equal(`sha-256=:${sha256Base64(blob)}:`);
    await waitForDrain(planes[0]!.url);
    flushRedis(stack.redis);
    const fromS3Only = await fetch(url(key), {
      method: 'PUT',
      body: blob,
      headers: reprDigest(blob),
    });
    expect(fromS3Only.status).to.equal(200);
  });

  it('keeps the first content under a key that two contents share (an MD5 collision), in Redis and in S3', async () => {
    const [first, second] = COLLIDING_PAIR;
    const key = COLLIDING_MD5;
    expect(
      (await fetch(url(key), { method: 'PUT', body: first, headers: reprDigest(first) })).status,
    ).to.equal(201);
    const refused = await fetch(url(key, planes[1]), {
      method: 'PUT',
      body: second,
      headers: reprDigest(second),
    });
    expect(refused.status).to.equal(409);
    expect(((await refused.json()) as { code: string }).code).to.equal('digest-conflict');
    // Without a digest an upload is judged by its key: already stored, nothing changes.
    const unclaimed = await fetch(url(key, planes[2]), { method: 'PUT', body: second });
    expect(unclaimed.status).to.equal(200);
    expect(await unclaimed.json()).to.include({ created: false, sha256: sha256Base64(first) });
    const got = await fetch(url(key, planes[1]));
    expect(Buffer.from(await got.arrayBuffer()).equals(first)).to.be.true;
    expect(got.headers.get('repr-digest')).to.equal(`sha-256=:${sha256Base64(first)}:`);
    // Only S3 holds it now: the same answers, from the durable copy.
    await waitForDrain(planes[0]!.url);
    flushRedis(stack.redis);
    const refusedFromS3 = await fetch(url(key), {
      method: 'PUT',
      body: second,
      headers: reprDigest(second),
    });
    expect(refusedFromS3.status).to.equal(409);
    const filled = await fetch(url(key, planes[2]));
    expect(Buffer.from(await filled.arrayBuffer()).equals(first)).to.be.true;
  });

  it('drops the other content of a collision found only once S3 is back, keeping the first', async () => {
    const [first, second] = COLLIDING_PAIR;
    const key = COLLIDING_MD5;
    // The first content is in S3 with its SHA-256 (previous test); Redis forgot it.
    flushRedis(stack.redis);
    await stack.s3.stop();
    // Without a digest and with S3 unreachable, the upload cannot be told apart: accepted.
    expect((await fetch(url(key), { method: 'PUT', body: second })).status).to.equal(201);
    await stack.s3.start();
    await eventually('the uploader to find the collision', async () =>
      (await sumOverPlanes('blobcache_journal_uploads_total', 'result="conflict"')) === 1
        ? true
        : null,
    );
    const got = await fetch(url(key, planes[1]));
    expect(Buffer.from(await got.arrayBuffer()).equals(first)).to.be.true;
    const logged = planes
      .flatMap((plane) => plane.logs)
      .find((line) => String(line.message).startsWith('Dropped an upload whose content collides'));
    expect(logged).to.include({ level: 'error', key });
  });
});
