import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdir, open, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { metricSum, metricValue, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;

/** A whole GET: its status and the MD5 of the body, or 'cut' when the transfer broke. */
async function getWhole(url: string): Promise<{ status: number; md5: string } | 'cut'> {
  try {
    const response = await fetch(url);
    const body = Buffer.from(await response.arrayBuffer());
    return { status: response.status, md5: md5(body) };
  } catch {
    return 'cut';
  }
}

/**
 * The per-process local tier for large blobs (decision 0073), on a real Redis Cluster and
 * S3 server. Every plane here keeps blobs of 1 MiB and more on disk (the hot tier takes
 * only blobs up to 512 KiB), each in a directory of its own.
 */
describe('the local tier for large blobs (production tier)', function () {
  this.timeout(600_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[] = [];
  let dirs = 0;

  before(async () => {
    stack = await startProductionStack();
  });
  afterEach(async () => {
    await Promise.all(planes.map((plane) => plane.stop('SIGKILL')));
    planes = [];
  });
  after(async () => {
    await stack?.stop();
  });

  async function spawnPlane(
    overrides: Record<string, string> = {},
  ): Promise<{ plane: SpawnedDataPlane; dir: string; blobUrl: (key: string) => string }> {
    const dir = overrides.BLOBCACHE_LOCAL_TIER_DIR ?? join(stack.dir, `local-${dirs++}`);
    const plane = await stack.spawn({
      BLOBCACHE_LOCAL_TIER_DIR: dir,
      BLOBCACHE_LOCAL_TIER_MIN_BLOB_BYTES: '1Mi',
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '512Ki',
      ...overrides,
    });
    planes.push(plane);
    return { plane, dir, blobUrl: (key) => `${plane.url}/v1/blobs/${key}` };
  }

  async function put(url: string, blob: Buffer): Promise<string> {
    const key = md5(blob);
    const stored = await fetch(`${url}/v1/blobs/${key}`, { method: 'PUT', body: blob });
    expect(stored.status).to.equal(201);
    await waitForDrain(url);
    return key;
  }

  const copies = (url: string) => metricValue(url, 'blobcache_local_tier_copies');
  const reads = (url: string, result: string) =>
    metricSum(url, 'blobcache_local_tier_reads_total', `result="${result}"`);

  /** Bytes the Redis masters wrote to their clients since they started. */
  function redisBytesOut(): number {
    return stack.redis
      .masters()
      .map((port) => /^total_net_output_bytes:(\d+)/m.exec(stack.redis.info(port, 'stats')))
      .reduce((sum, match) => sum + Number(match?.[1] ?? 0), 0);
  }

  async function filesIn(dir: string): Promise<string[]> {
    return (await readdir(dir)).filter((name) => name !== 'tmp').sort();
  }

  it('serves a popular blob to many clients at once for about one read of its Redis shard', async () => {
    const { plane, blobUrl } = await spawnPlane();
    const blob = blobOf(16 * MiB, 1601);
    const key = await put(plane.url, blob);

    const before = redisBytesOut();
    const first = await Promise.all(Array.from({ length: 16 }, () => getWhole(blobUrl(key))));
    const duringFirst = redisBytesOut() - before;
    const trouble = () =>
      JSON.stringify(plane.logs.filter((line) => line.level === 'warn' || line.level === 'error'));
    for (const result of first) expect(result, trouble()).to.deep.equal({ status: 200, md5: key });
    expect(await reads(plane.url, 'filled'), 'copies started').to.equal(1);
    expect(await reads(plane.url, 'followed')).to.equal(16 - 1 - (await reads(plane.url, 'hit')));
    // One read of the blob, plus the manifest and generation look-ups of 16 requests and
    // the journal's polling: far less than a second copy of the blob.
    expect(duringFirst, 'bytes Redis served for 16 concurrent reads').to.be.below(
      1.25 * blob.length,
    );

    await eventually('the copy to be kept', async () => (await copies(plane.url)) === 1);
    const again = redisBytesOut();
    const second = await Promise.all(Array.from({ length: 16 }, () => getWhole(blobUrl(key))));
    for (const result of second) expect(result).to.deep.equal({ status: 200, md5: key });
    expect(redisBytesOut() - again, 'bytes Redis served for 16 reads of a kept copy').to.be.below(
      MiB,
    );
    expect(await metricValue(plane.url, 'blobcache_local_tier_served_bytes_total')).to.be.at.least(
      16 * blob.length,
    );
  });

  it('drops a copy being written when the blob is deleted, and never serves it after the 204', async () => {
    // The smallest read-ahead budget: the copy is read from Redis in 64 KiB pieces, so it is
    // still being written when the DELETE comes.
    const { plane, dir, blobUrl } = await spawnPlane({ BLOBCACHE_READ_AHEAD_BYTES: '1Mi' });
    const blob = blobOf(96 * MiB, 1602);
    const key = await put(plane.url, blob);

    const reading = await fetch(blobUrl(key));
    const reader = reading.body!.getReader();
    await reader.read();
    expect(await readdir(join(dir, 'tmp')), 'a copy being written').to.have.length(1);
    expect(await filesIn(dir), 'no copy kept yet').to.deep.equal([]);

    expect((await fetch(blobUrl(key), { method: 'DELETE' })).status).to.equal(204);
    expect(await getWhole(blobUrl(key))).to.deep.include({ status: 404 });
    // The copy's bytes are given back once it has stopped.
    await eventually(
      'the abandoned copy to stop',
      async () =>
        (await metricValue(plane.url, 'blobcache_local_tier_bytes')) === 0 &&
        (await readdir(join(dir, 'tmp'))).length === 0,
    );
    expect(await filesIn(dir), 'nothing kept after the DELETE').to.deep.equal([]);
    expect(await copies(plane.url)).to.equal(0);
    expect(await getWhole(blobUrl(key))).to.deep.include({ status: 404 });
    // The reader that started before the DELETE may finish or be cut: either is allowed.
    await reader.cancel().catch(() => undefined);
  });

  it('drops a kept copy in every process before the DELETE is answered', async () => {
    const a = await spawnPlane();
    const b = await spawnPlane();
    const blob = blobOf(4 * MiB, 1603);
    const key = await put(a.plane.url, blob);
    expect(await getWhole(b.blobUrl(key))).to.deep.equal({ status: 200, md5: key });
    await eventually('the copy to be kept', async () => (await copies(b.plane.url)) === 1);
    expect(await getWhole(b.blobUrl(key))).to.deep.equal({ status: 200, md5: key });
    expect(await reads(b.plane.url, 'hit'), 'the second read came from the copy').to.equal(1);

    expect((await fetch(a.blobUrl(key), { method: 'DELETE' })).status).to.equal(204);
    expect(await copies(b.plane.url), 'copies right after the 204').to.equal(0);
    expect(await getWhole(b.blobUrl(key))).to.deep.include({ status: 404 });
    await eventually('the file to be removed', async () => (await filesIn(b.dir)).length === 0);
  });

  it("never serves a blob after the DELETE's 204, whatever its copies were doing (12 races over 2 processes)", async () => {
    const a = await spawnPlane();
    const b = await spawnPlane();
    for (let round = 0; round < 12; round++) {
      const blob = blobOf(3 * MiB + round * 4099, 1700 + round);
      const key = md5(blob);
      expect(
        (await fetch(a.blobUrl(key), { method: 'PUT', body: blob })).status,
        `PUT ${round}`,
      ).to.equal(201);
      // Round 0, 3, 6...: DELETE as the reads start; 1, 4...: once one has bytes; 2, 5...:
      // once both processes keep a copy.
      const reads = [a, b, a, b].map((plane) => getWhole(plane.blobUrl(key)));
      if (round % 3 === 1) {
        const reader = (await fetch(b.blobUrl(key))).body!.getReader();
        await reader.read();
        void reader.cancel();
      }
      if (round % 3 === 2) {
        await Promise.all(reads);
        await eventually(
          'both copies to be kept',
          async () => (await copies(a.plane.url)) === 1 && (await copies(b.plane.url)) === 1,
        );
      }
      expect((await fetch(a.blobUrl(key), { method: 'DELETE' })).status).to.equal(204);
      for (const [name, side] of [
        ['a', a],
        ['b', b],
      ] as const) {
        expect(
          await copies(side.plane.url),
          `copies on ${name} after the 204, round ${round}`,
        ).to.equal(0);
        expect(await getWhole(side.blobUrl(key)), `GET on ${name}, round ${round}`).to.deep.include(
          { status: 404 },
        );
      }
      // Reads under way before the DELETE may finish or be cut; none may serve wrong bytes.
      for (const result of await Promise.all(reads)) {
        if (result !== 'cut' && result.status === 200) expect(result.md5).to.equal(key);
      }
      for (const [name, side] of [
        ['a', a],
        ['b', b],
      ] as const) {
        await eventually(
          `copies on ${name} to stop, round ${round}`,
          async () => (await metricValue(side.plane.url, 'blobcache_local_tier_bytes')) === 0,
        );
        expect(await filesIn(side.dir), `files kept on ${name}, round ${round}`).to.deep.equal([]);
        expect(await getWhole(side.blobUrl(key))).to.deep.include({ status: 404 });
      }
    }
  });

  it('never serves a damaged copy: quarantines it and reads Redis, even with its times put back', async () => {
    const { plane, dir, blobUrl } = await spawnPlane();
    const blob = blobOf(4 * MiB, 1604);
    const key = await put(plane.url, blob);
    const path = join(dir, key);
    for (const [round, restoreTimes] of [false, true].entries()) {
      expect(await getWhole(blobUrl(key))).to.deep.equal({ status: 200, md5: key });
      await eventually('the copy to be kept', async () => (await copies(plane.url)) === 1);
      const kept = await stat(path);
      const file = await open(path, 'r+');
      await file.write(Buffer.from('damaged'), 0, 7, 2 * MiB);
      await file.close();
      if (restoreTimes) await utimes(path, kept.atime, kept.mtime);
      expect(await getWhole(blobUrl(key)), `read after damage ${round}`).to.deep.equal({
        status: 200,
        md5: key,
      });
      expect(await metricSum(plane.url, 'blobcache_quarantined_total', 'tier="local"')).to.equal(
        round + 1,
      );
      expect(
        plane.logs.some(
          (line) => line.message === 'Quarantined a local copy: removed it, reads go to Redis',
        ),
      ).to.equal(true);
    }
    // The read after the damage started a new copy, which is served from then on.
    await eventually('a new copy to be kept', async () => (await copies(plane.url)) === 1);
    expect(await getWhole(blobUrl(key))).to.deep.equal({ status: 200, md5: key });
  });

  it('cuts the transfer, and keeps no copy, when the copy finds the Redis chunks damaged', async () => {
    const { plane, dir, blobUrl } = await spawnPlane();
    const blob = blobOf(4 * MiB, 1610);
    const key = await put(plane.url, blob);
    const uploadId = await stack.cluster.hget(`bc:{${key}}:m`, 'up');
    await stack.cluster.setrange(`bc:{${key}}:c:${uploadId}:2`, 100, 'damaged');
    expect(await getWhole(blobUrl(key)), 'a damaged blob served whole').to.equal('cut');
    await eventually(
      'the copy to stop',
      async () => (await metricValue(plane.url, 'blobcache_local_tier_bytes')) === 0,
    );
    expect(await filesIn(dir)).to.deep.equal([]);
    expect(await copies(plane.url)).to.equal(0);
  });

  it('keeps no copy on a full disk, and every read still succeeds', async () => {
    if (process.getuid?.() !== 0) throw new Error('This test mounts a tmpfs and must run as root');
    const mountPoint = join(stack.dir, 'full-local-tier');
    await mkdir(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    try {
      const { plane, blobUrl } = await spawnPlane({
        BLOBCACHE_LOCAL_TIER_DIR: mountPoint,
        BLOBCACHE_LOCAL_TIER_BYTES: '64Mi',
      });
      const blob = blobOf(8 * MiB, 1605);
      const key = await put(plane.url, blob);
      for (let round = 0; round < 3; round++) {
        expect(await getWhole(blobUrl(key))).to.deep.equal({ status: 200, md5: key });
      }
      await eventually(
        'the copies to give up',
        async () => (await metricValue(plane.url, 'blobcache_local_tier_bytes')) === 0,
      );
      expect(await copies(plane.url)).to.equal(0);
      expect(await readdir(join(mountPoint, 'tmp')), 'no partial copy left').to.deep.equal([]);
      expect(
        plane.logs.some(
          (line) =>
            line.message === 'Kept no local copy of a blob; reads of it go on from Redis' &&
            String(line.reason).includes('ENOSPC'),
        ),
      ).to.equal(true);
    } finally {
      await Promise.all(planes.map((plane) => plane.stop('SIGKILL')));
      planes = [];
      execFileSync('umount', [mountPoint]);
    }
  });

  it('empties the directory on start: nothing a previous process left is served', async () => {
    const dir = join(stack.dir, 'restarted-local-tier');
    const first = await spawnPlane({ BLOBCACHE_LOCAL_TIER_DIR: dir });
    const blob = blobOf(4 * MiB, 1606);
    const key = await put(first.plane.url, blob);
    expect(await getWhole(first.blobUrl(key))).to.deep.equal({ status: 200, md5: key });
    await eventually('the copy to be kept', async () => (await copies(first.plane.url)) === 1);
    await first.plane.stop('SIGKILL');
    // What a crash can leave: the copy (damaged since), a partial copy, a copy of a blob
    // deleted while the process was down.
    const file = await open(join(dir, key), 'r+');
    await file.write(Buffer.from('damaged'), 0, 7, MiB);
    await file.close();
    await writeFile(join(dir, 'tmp', `${key}.partial`), 'partial');
    const other = md5('deleted while down');
    await writeFile(join(dir, other), 'deleted while down');
    await writeFile(join(dir, 'not-ours.txt'), 'left alone');

    const second = await spawnPlane({ BLOBCACHE_LOCAL_TIER_DIR: dir });
    expect(await filesIn(dir)).to.deep.equal(['not-ours.txt']);
    expect(await readdir(join(dir, 'tmp'))).to.deep.equal([]);
    expect(await copies(second.plane.url)).to.equal(0);
    expect(await getWhole(second.blobUrl(key))).to.deep.equal({ status: 200, md5: key });
    expect(await getWhole(second.blobUrl(other))).to.deep.include({ status: 404 });
  });

  it('holds its bound, evicting the least recently used copy', async () => {
    const { plane, dir, blobUrl } = await spawnPlane({ BLOBCACHE_LOCAL_TIER_BYTES: '10Mi' });
    const blobs = [1607, 1608, 1609].map((seed) => blobOf(4 * MiB, seed));
    const keys: string[] = [];
    for (const blob of blobs) keys.push(await put(plane.url, blob));
    for (const [index, key] of keys.entries()) {
      expect(await getWhole(blobUrl(key))).to.deep.equal({ status: 200, md5: key });
      await eventually(
        `copy ${index} to be kept`,
        async () =>
          (await filesIn(dir)).includes(key) &&
          (await copies(plane.url)) === Math.min(index + 1, 2),
      );
      expect(await metricValue(plane.url, 'blobcache_local_tier_bytes')).to.be.at.most(10 * MiB);
    }
    expect(await filesIn(dir), 'the first blob, least recently used, was evicted').to.deep.equal(
      [keys[1]!, keys[2]!].sort(),
    );
    expect(await metricValue(plane.url, 'blobcache_local_tier_evictions_total')).to.equal(1);
    let onDisk = 0;
    for (const name of await filesIn(dir)) onDisk += (await stat(join(dir, name))).size;
    expect(onDisk).to.be.at.most(10 * MiB);
    expect(await getWhole(blobUrl(keys[0]!))).to.deep.equal({ status: 200, md5: keys[0] });
  });
});
