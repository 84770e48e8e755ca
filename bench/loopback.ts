/**
 * The loopback scenarios of the benchmark: memory of a plane that only serves, the miss
 * storm and journal drain against the loopback S3 server, and the machine's PUT limits.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { cpus } from 'node:os';
import { Readable } from 'node:stream';
import { md5 } from '../test/harness/blobs.ts';
import { residentSet } from '../test/harness/dataplane.ts';
import { metricValue, waitForDrain } from '../test/harness/production-helpers.ts';
import type { ProductionStack } from '../test/harness/production.ts';
import { putLoad, redisBenchmarkTests, run, wrkGet } from './load.ts';
import { cpuSecondsDuring, ProcessSampler } from './processes.ts';
import type { BenchResults } from './report.ts';

const MiB = 1024 * 1024;

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/**
 * Memory of a data plane that only serves: a fresh process (the compiled build, as the
 * image runs it) streams a blob another process stored, over 4 connections. The long-lived
 * planes of the main table also carry what the allocator kept from every earlier run.
 */
export async function servingMemory(
  stack: ProductionStack,
  path: string,
  size: number,
  load: { connections: number; seconds: number },
): Promise<NonNullable<BenchResults['memory']>> {
  const plane = await stack.spawn(
    { BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint },
    { compiled: true },
  );
  try {
    const idle = await residentSet(plane.child.pid!);
    const sampler = new ProcessSampler(plane.child.pid!);
    sampler.start();
    const { connections, seconds } = load;
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
export async function missStorm(stack: ProductionStack): Promise<BenchResults['storm']> {
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
export async function drainRate(stack: ProductionStack): Promise<Required<BenchResults['drain']>> {
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
export async function measurePutCosts(
  stack: ProductionStack,
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

export function putCeiling(
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
