/**
 * `npm run bench`: starts Redis Cluster + S3 (versitygw), nginx and data-plane processes on
 * loopback, drives load from separate processes (wrk, redis-benchmark, put-load.ts), and
 * writes bench/results/<date>-<machine>.{json,md,png} plus latest.{md,png}.
 *
 * Set BENCH_SECONDS (default 5) for the length of each GET run and BENCH_SIZES (comma
 * separated byte counts) to run fewer sizes.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createHash, randomFillSync } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { md5 } from '../test/harness/blobs.ts';
import { residentSet, spawnDataPlane } from '../test/harness/dataplane.ts';
import { metricValue, waitForDrain } from '../test/harness/production-helpers.ts';
import { BUCKET, s3Client, startProductionStack } from '../test/harness/production.ts';
import { freePorts } from '../test/harness/services.ts';
import {
  putLoad,
  redisBenchmark,
  redisBenchmarkTests,
  run,
  wrkGet,
  type LoadResult,
} from './load.ts';
import { cpuSecondsDuring, ProcessSampler, startNginx } from './processes.ts';
import { renderReport, type BenchResults, type Row } from './report.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZES = process.env.BENCH_SIZES?.split(',').map(Number) ?? [
  4 * KiB,
  64 * KiB,
  MiB,
  16 * MiB,
  256 * MiB,
];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const connectionsFor = (size: number): number =>
  size >= 256 * MiB ? 4 : size >= 16 * MiB ? 8 : 16;
const putCountFor = (size: number): number =>
  size <= 4 * KiB ? 4000 : size <= 64 * KiB ? 2000 : size <= MiB ? 400 : size <= 16 * MiB ? 40 : 4;

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blobcache-bench-'));
  const stack = await startProductionStack({ maxMemory: '3gb' });
  const nginx = await startNginx(join(dir, 'nginx'), await freePorts(1));
  // The planes run the compiled build, as the container image does. The measured plane
  // talks to S3 directly; only the miss storm goes through the counting proxy.
  const production = await stack.spawn(
    {
      BLOBCACHE_MAX_BLOB_BYTES: '1Gi',
      BLOBCACHE_LOG_LEVEL: 'info',
      BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint,
    },
    { compiled: true },
  );
  const embedded = await spawnDataPlane(
    {
      BLOBCACHE_DATA_DIR: join(dir, 'embedded'),
      BLOBCACHE_MAX_BLOB_BYTES: '1Gi',
    },
    { compiled: true },
  );
  const rows: Row[] = [];
  let memory: BenchResults['memory'];
  const s3 = s3Client(stack.s3.endpoint);
  try {
    for (const size of SIZES) {
      const blob = randomFillSync(Buffer.allocUnsafe(size));
      const key = md5(blob);
      writeFileSync(join(nginx.root, key), blob);
      for (const plane of [production, embedded]) {
        const response = await fetch(`${plane.url}/v1/blobs/${key}`, { method: 'PUT', body: blob });
        if (response.status !== 201)
          throw new Error(`Preloading ${size} bytes answered ${response.status}`);
      }
      await waitForDrain(production.url, 600_000);
      const signed = await getSignedUrl(
        s3,
        new GetObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key) }),
        {
          expiresIn: 3600,
        },
      );
      const connections = connectionsFor(size);
      const measure = async (
        system: string,
        url: string,
        pid?: number,
        clients = connections,
      ): Promise<void> => {
        const sampler = pid === undefined ? undefined : new ProcessSampler(pid);
        sampler?.start();
        const result = await wrkGet(url, { connections: clients, seconds: SECONDS });
        rows.push({ op: 'GET', system, size, connections: clients, ...result, ...sampler?.stop() });
        log(
          `GET ${system} ${size} B: ${result.megabytesPerSecond.toFixed(0)} MB/s, ${result.requestsPerSecond.toFixed(0)} req/s`,
        );
      };
      await measure(
        'blobcache (Redis + S3)',
        `${production.url}/v1/blobs/${key}`,
        production.child.pid,
      );
      await measure('blobcache (embedded)', `${embedded.url}/v1/blobs/${key}`, embedded.child.pid);
      await measure('nginx (static file)', `${nginx.url}/${key}`);
      await measure('S3 direct (versitygw)', signed);
      if (size === 4 * KiB) {
        // Latency without queueing: one connection at a time.
        await measure(
          'blobcache (Redis + S3)',
          `${production.url}/v1/blobs/${key}`,
          production.child.pid,
          1,
        );
        await measure('S3 direct (versitygw)', signed, undefined, 1);
        // The floor: how much lower than the S3 server's any HTTP server's p50 is here.
        await measure('nginx (static file)', `${nginx.url}/${key}`, undefined, 1);
      }
      if (size === 256 * MiB) memory = await servingMemory(stack, `/v1/blobs/${key}`, size);
      const redis = await redisBenchmark(stack.redis.masters()[0]!, {
        size,
        requests: Math.max(8, Math.min(20_000, Math.floor((2 * 1024 * MiB) / size))),
        connections,
      });
      rows.push({ op: 'GET', system: 'Redis (redis-benchmark)', size, connections, ...redis.get });
      rows.push({ op: 'PUT', system: 'Redis (redis-benchmark)', size, connections, ...redis.set });
      for (const [system, plane] of [
        ['blobcache (Redis + S3)', production],
        ['blobcache (embedded)', embedded],
      ] as const) {
        const sampler = new ProcessSampler(plane.child.pid!);
        sampler.start();
        const result: LoadResult = await putLoad(plane.url, {
          size,
          count: putCountFor(size),
          connections,
          seed: size,
        });
        rows.push({ op: 'PUT', system, size, connections, ...result, ...sampler.stop() });
        log(
          `PUT ${system} ${size} B: ${result.megabytesPerSecond.toFixed(0)} MB/s (${result.errors} errors)`,
        );
      }
      await waitForDrain(production.url, 600_000);
      // Keep memory for the next size: the blobs are in S3, Redis may start empty.
      await run('redis-cli', [
        '--cluster',
        'call',
        `127.0.0.1:${stack.redis.masters()[0]}`,
        'FLUSHALL',
      ]);
      await rm(join(nginx.root, key));
    }
    const putLimits = await measurePutCosts(stack);
    const storm = await missStorm(stack);
    const drain = await drainRate(stack);
    const limits = putCeiling(putLimits, drain.s3CpuMsPerMegabyte);
    const results: BenchResults = {
      date: new Date().toISOString(),
      machine: {
        arch: arch(),
        cpus: cpus().length,
        model: cpus()[0]?.model ?? 'unknown',
        node: process.version,
      },
      seconds: SECONDS,
      rows,
      storm,
      drain,
      limits,
      ...(memory === undefined ? {} : { memory }),
    };
    const name = `${results.date.slice(0, 10)}-${arch()}-${cpus().length}cpu`;
    const out = join(import.meta.dirname, 'results');
    writeFileSync(join(out, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(out, `${name}.md`), renderReport(results, `${name}.png`));
    await run('/usr/bin/python3', [
      join(import.meta.dirname, 'plot.py'),
      join(out, `${name}.json`),
      join(out, `${name}.png`),
    ]);
    copyFileSync(join(out, `${name}.md`), join(out, 'latest.md'));
    copyFileSync(join(out, `${name}.png`), join(out, 'latest.png'));
    process.stdout.write(renderReport(results, `${name}.png`));
  } finally {
    s3.destroy();
    await embedded.stop('SIGKILL');
    await nginx.stop();
    await stack.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Memory of a data plane that only serves: a fresh process (the compiled build, as the
 * image runs it) streams a blob another process stored, over 4 connections. The long-lived
 * planes of the main table also carry what the allocator kept from every earlier run.
 */
async function servingMemory(
  stack: Awaited<ReturnType<typeof startProductionStack>>,
  path: string,
  size: number,
): Promise<NonNullable<BenchResults['memory']>> {
  const plane = await stack.spawn(
    { BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint },
    { compiled: true },
  );
  try {
    const idle = await residentSet(plane.child.pid!);
    const sampler = new ProcessSampler(plane.child.pid!);
    sampler.start();
    const connections = connectionsFor(size);
    const seconds = 2 * SECONDS;
    const result = await wrkGet(`${plane.url}${path}`, { connections, seconds });
    const { peakRssMiB } = sampler.stop();
    const memory = {
      blobBytes: size,
      connections,
      seconds,
      megabytesPerSecond: result.megabytesPerSecond,
      errors: result.errors,
      idleRssMiB: Math.round((idle.currentBytes / MiB) * 10) / 10,
      peakRssMiB,
    };
    log(`serving-only plane: idle ${memory.idleRssMiB} MiB, peak ${peakRssMiB} MiB`);
    return memory;
  } finally {
    await plane.stop('SIGKILL');
  }
}

/** 100 concurrent GETs of one blob that only S3 has, spread over 3 data-plane processes. */
async function missStorm(
  stack: Awaited<ReturnType<typeof startProductionStack>>,
): Promise<BenchResults['storm']> {
  const planes = [await stack.spawn(), await stack.spawn(), await stack.spawn()];
  const blob = randomFillSync(Buffer.allocUnsafe(16 * MiB));
  const key = md5(blob);
  await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
  const before = stack.proxy.count('GET', key);
  const started = Date.now();
  const statuses = await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      const response = await fetch(`${planes[i % 3]!.url}/v1/blobs/${key}`);
      const body = Buffer.from(await response.arrayBuffer());
      return response.status === 200 && body.equals(blob);
    }),
  );
  const result = {
    requests: 100,
    processes: 3,
    blobBytes: blob.length,
    s3Gets: stack.proxy.count('GET', key) - before,
    allCorrect: statuses.every(Boolean),
    timeToLastByteMs: Date.now() - started,
  };
  log(`miss storm: ${result.s3Gets} S3 GET(s), last byte after ${result.timeToLastByteMs} ms`);
  return result;
}

/** Journal drain: blobs acknowledged while S3 is down, then timed until all are in S3. */
async function drainRate(
  stack: Awaited<ReturnType<typeof startProductionStack>>,
): Promise<Required<BenchResults['drain']>> {
  const plane = await stack.spawn({ BLOBCACHE_UPLOAD_RETRY_MAX_MS: '500' });
  const count = 300;
  const size = MiB;
  await stack.s3.stop();
  const result = await putLoad(plane.url, { size, count, connections: 8, seed: 999 });
  if (result.errors > 0)
    throw new Error(`${result.errors} uploads failed while filling the journal`);
  const backlog = await metricValue(plane.url, 'blobcache_journal_backlog');
  await stack.s3.start();
  const started = Date.now();
  // The S3 server's CPU per MB it stores: a cost every design pays once per blob.
  const { cpuSeconds } = await cpuSecondsDuring(stack.s3.pids(), () =>
    waitForDrain(plane.url, 600_000),
  );
  const seconds = (Date.now() - started) / 1000;
  const megabytes = (backlog * size) / 1e6;
  const drain = {
    blobs: backlog,
    blobBytes: size,
    seconds,
    blobsPerSecond: backlog / seconds,
    megabytesPerSecond: megabytes / seconds,
    s3CpuMsPerMegabyte: (cpuSeconds * 1000) / megabytes,
  };
  log(`drain: ${drain.blobs} blobs in ${seconds.toFixed(1)} s`);
  return drain;
}

/**
 * The least CPU any PUT design needs per MB on this machine: hashing every byte once (MD5,
 * on one core, to check the key before acknowledging) plus what the Redis servers spend to
 * store and replicate a MB in redis-benchmark's own SET run. The HTTP client, the data
 * plane's own work and everything else are left out, so the ceiling it gives is generous.
 */
async function measurePutCosts(
  stack: Awaited<ReturnType<typeof startProductionStack>>,
): Promise<{ md5MegabytesPerSecond: number; redisSetCpuMsPerMegabyte: number }> {
  const block = randomFillSync(Buffer.allocUnsafe(MiB));
  let hashed = 0;
  const started = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - started) < 2e9) {
    createHash('md5').update(block).digest();
    hashed += block.length;
  }
  const md5MegabytesPerSecond = hashed / 1e6 / (Number(process.hrtime.bigint() - started) / 1e9);
  const requests = 2000;
  const pids = stack.redis.nodes.map((node) => node.process.pid!);
  const { cpuSeconds } = await cpuSecondsDuring(pids, () =>
    redisBenchmarkTests(stack.redis.masters()[0]!, {
      size: MiB,
      requests,
      connections: 16,
      tests: ['SET'],
    }),
  );
  await run('redis-cli', [
    '--cluster',
    'call',
    `127.0.0.1:${stack.redis.masters()[0]}`,
    'FLUSHALL',
  ]);
  const redisSetCpuMsPerMegabyte = (cpuSeconds * 1000) / ((requests * MiB) / 1e6);
  log(
    `PUT costs: MD5 ${md5MegabytesPerSecond.toFixed(0)} MB/s on one core, Redis servers ${redisSetCpuMsPerMegabyte.toFixed(2)} CPU ms per MB SET`,
  );
  return { md5MegabytesPerSecond, redisSetCpuMsPerMegabyte };
}

function putCeiling(
  costs: { md5MegabytesPerSecond: number; redisSetCpuMsPerMegabyte: number },
  s3CpuMsPerMegabyte: number,
): BenchResults['limits'] {
  const cores = cpus().length;
  const md5CpuMsPerMegabyte = 1000 / costs.md5MegabytesPerSecond;
  const burst = md5CpuMsPerMegabyte + costs.redisSetCpuMsPerMegabyte;
  return {
    cores,
    md5MegabytesPerSecond: costs.md5MegabytesPerSecond,
    md5CpuMsPerMegabyte,
    redisSetCpuMsPerMegabyte: costs.redisSetCpuMsPerMegabyte,
    s3CpuMsPerMegabyte,
    putCeilingMegabytesPerSecond: (cores * 1000) / burst,
    sustainedPutCeilingMegabytesPerSecond: (cores * 1000) / (burst + s3CpuMsPerMegabyte),
  };
}

await main();
