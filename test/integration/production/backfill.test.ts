import { expect } from 'chai';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runBackfill, type BackfillRun } from '../../harness/backfill.ts';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { flushRedis, inParallel } from '../../harness/production-helpers.ts';
import { BUCKET, startProductionStack, type ProductionStack } from '../../harness/production.ts';

const KiB = 1024;
const SIZES = [40 * KiB, 300 * KiB, 1024 * KiB + 17, 2560 * KiB, 64 * KiB, 700 * KiB];
const COUNT = 200;

interface Stored {
  key: string;
  blob: Buffer;
  modifiedMs: number;
}

describe('backfill: warming a cold Redis from S3 (real Redis Cluster, S3 server, command)', function () {
  this.timeout(600_000);
  let stack: ProductionStack;
  let planes: SpawnedDataPlane[];
  let blobs: Stored[];
  /** The newest blobs that fit the budget, newest first, as the issue defines them. */
  let expected: Stored[];
  let budget: number;

  const getsOf = (key: string) => stack.proxy.count('GET', key);
  const cached = async (key: string) => (await stack.cluster.exists(`bc:{${key}}:m`)) === 1;
  const backfill = (args: string[], onLine?: (line: string) => void): Promise<BackfillRun> =>
    runBackfill(
      stack.env({ BLOBCACHE_LOG_LEVEL: 'info' }),
      ['--max-bytes', String(budget), '--progress-interval-ms', '200', ...args],
      onLine,
    );
  const reportOf = async (partition: number) =>
    JSON.parse(
      (await stack.cluster.get(`bc:{bc:incarnation}:backfill:${partition}`)) ?? 'null',
    ) as {
      state: string;
      blobs: number;
      blobsTotal: number;
      blobsLoaded: number;
      bytesLoaded: number;
      bytesTotal: number;
    } | null;

  before(async () => {
    stack = await startProductionStack();
    planes = await Promise.all([0, 1].map(() => stack.spawn()));
    // S3 dates an object by when it was written; versitygw reports its file's mtime (to the
    // second). Dating the files spreads the 200 writes over 200 s, in an order unrelated to
    // the keys' (the order of a listing).
    const base = Date.UTC(2026, 0, 1) / 1000;
    blobs = Array.from({ length: COUNT }, (_, i) => {
      const blob = blobOf(SIZES[i % SIZES.length]! + i, 9_000 + i);
      return { key: md5(blob), blob, modifiedMs: (base + ((i * 37) % COUNT)) * 1000 };
    });
    await inParallel(blobs, 8, async ({ key, blob, modifiedMs }) => {
      await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
      const file = join(stack.dir, 's3', 'data', BUCKET, stack.store.objectKey(key));
      await utimes(file, modifiedMs / 1000, modifiedMs / 1000);
    });
    const newestFirst = [...blobs].sort((a, b) => b.modifiedMs - a.modifiedMs);
    const total = blobs.reduce((sum, { blob }) => sum + blob.length, 0);
    budget = Math.floor(total / 2);
    expected = [];
    let used = 0;
    for (const stored of newestFirst) {
      if (used + stored.blob.length > budget) break;
      used += stored.blob.length;
      expected.push(stored);
    }
  });
  after(async () => {
    await stack?.stop();
  });

  it('loads the newest blobs up to the budget into a wiped cluster, each with one S3 GET, and nothing beyond it', async () => {
    flushRedis(stack.redis);
    const before = new Map(blobs.map(({ key }) => [key, getsOf(key)]));
    const run = await backfill(['--parallelism', '4']);
    expect(run.code, run.lines.join('\n')).to.equal(0);
    const chosen = new Set(expected.map(({ key }) => key));
    expect(chosen.size).to.be.within(COUNT / 3, (2 * COUNT) / 3);
    for (const { key } of blobs) {
      const wanted = chosen.has(key);
      expect(await cached(key), `${key} cached`).to.equal(wanted);
      expect(getsOf(key) - before.get(key)!, `S3 GETs of ${key}`).to.equal(wanted ? 1 : 0);
    }
    // A hit for readers now, with the right bytes.
    for (const { key, blob } of expected.slice(0, 5)) {
      const response = await fetch(`${planes[0]!.url}/v1/blobs/${key}`);
      expect(response.headers.get('x-cache')).to.equal('hit');
      expect(Buffer.from(await response.arrayBuffer()).equals(blob)).to.be.true;
    }
    // People read progress in the log; the operator reads it in Redis.
    const done = run.lines.find((line) => line.includes('Backfill 1/1 done'));
    console.log(`      ${done?.replace(/^\S+ info /, '')}`);
    expect(done, run.lines.join('\n')).to.include(`${expected.length}/${expected.length} blobs`);
    expect(run.lines.some((line) => /Backfill 1\/1: .* blobs, .*\/s, /.test(line))).to.be.true;
    const report = await reportOf(0);
    expect(report).to.include({
      state: 'done',
      blobs: expected.length,
      blobsTotal: expected.length,
      blobsLoaded: expected.length,
      bytesLoaded: expected.reduce((sum, { blob }) => sum + blob.length, 0),
    });
  });

  it('finishes a second run at once: nothing read from S3, everything found cached', async () => {
    const since = stack.proxy.requests.length;
    const run = await backfill(['--parallelism', '4']);
    expect(run.code, run.lines.join('\n')).to.equal(0);
    // Only the listing asked S3 anything.
    const asked = stack.proxy.requests.slice(since);
    expect(asked.length).to.be.greaterThan(0);
    expect(asked.filter((request) => !request.path.includes('list-type=2'))).to.deep.equal([]);
    const report = await reportOf(0);
    expect(report).to.include({ state: 'done', blobs: expected.length, blobsLoaded: 0 });
  });

  it('splits the work between two partitions that together load each blob exactly once', async () => {
    flushRedis(stack.redis);
    const before = new Map(blobs.map(({ key }) => [key, getsOf(key)]));
    const runs = await Promise.all(
      [0, 1].map((partition) =>
        backfill(['--partitions', '2', '--partition', String(partition), '--parallelism', '2']),
      ),
    );
    for (const run of runs) expect(run.code, run.lines.join('\n')).to.equal(0);
    const chosen = new Set(expected.map(({ key }) => key));
    for (const { key } of blobs) {
      expect(getsOf(key) - before.get(key)!, key).to.equal(chosen.has(key) ? 1 : 0);
      expect(await cached(key), key).to.equal(chosen.has(key));
    }
    const reports = await Promise.all([reportOf(0), reportOf(1)]);
    expect(reports.map((report) => report?.state)).to.deep.equal(['done', 'done']);
    // Each partition owns a share of its own: they add up to the selection.
    expect(reports.every((report) => report!.blobsTotal > 0)).to.be.true;
    expect(reports[0]!.blobsLoaded + reports[1]!.blobsLoaded).to.equal(expected.length);
  });

  it('coalesces with live traffic, which sees no error while it runs', async () => {
    flushRedis(stack.redis);
    const before = new Map(blobs.map(({ key }) => [key, getsOf(key)]));
    let running = true;
    const failures: string[] = [];
    let reads = 0;
    const traffic = inParallel(
      Array.from({ length: 8 }, (_, i) => i),
      8,
      async (worker) => {
        for (let i = worker; running; i += 8) {
          const { key, blob } = blobs[(i * 7) % COUNT]!;
          const response = await fetch(`${planes[i % 2]!.url}/v1/blobs/${key}`);
          const body = Buffer.from(await response.arrayBuffer());
          reads += 1;
          if (response.status !== 200 || !body.equals(blob))
            failures.push(`${key}: ${response.status}`);
        }
      },
    );
    const run = await backfill(['--parallelism', '2']);
    running = false;
    await traffic;
    expect(run.code, run.lines.join('\n')).to.equal(0);
    expect(failures).to.deep.equal([]);
    expect(reads).to.be.greaterThan(0);
    // Whoever came first filled a blob, the other streamed behind or found it cached.
    for (const { key } of blobs) expect(getsOf(key) - before.get(key)!, key).to.be.at.most(1);
    for (const { key } of expected) expect(await cached(key), key).to.be.true;
  });
});
