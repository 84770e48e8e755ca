/**
 * The main table, one blob size at a time: GETs of a hot blob from the data planes, nginx
 * (static files) and the loopback S3 server; Redis's own SET and GET; PUTs through the data
 * planes; for 4 KiB, latency on one connection and the bare write + fsync + rename loop.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { md5 } from '../test/harness/blobs.ts';
import type { SpawnedDataPlane } from '../test/harness/dataplane.ts';
import { waitForDrain } from '../test/harness/production-helpers.ts';
import { BUCKET, s3Client, type ProductionStack } from '../test/harness/production.ts';
import {
  fsyncLoop,
  putFloor,
  putLoad,
  redisBenchmarkTests,
  replicatedPutFloor,
  run,
  type LoadResult,
} from './load.ts';
import { servingMemory } from './loopback.ts';
import { measureGet, warmUp, type Served } from './measure.ts';
import type { StaticNginx } from './nginx.ts';
import { cpuSecondsDuring, ProcessSampler } from './processes.ts';
import type { Row } from './report-rows.ts';
import type { BenchResults } from './report.ts';
import { startBareNode } from './bare-node.ts';
import {
  BARE_NODE,
  DURABLE_FSYNC_LOOP,
  EMBEDDED,
  FSYNC_LOOP,
  PRODUCTION,
  PUT_FLOOR,
  REPLICATED_PUT_FLOOR,
  UNREPLICATED_PUT_FLOOR,
} from './systems.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const putCountFor = (size: number): number =>
  size <= 4 * KiB ? 4000 : size <= 64 * KiB ? 2000 : size <= MiB ? 400 : size <= 16 * MiB ? 40 : 4;

export interface SizeContext {
  stack: ProductionStack;
  nginx: StaticNginx;
  production: SpawnedDataPlane;
  embedded: SpawnedDataPlane;
  dir: string;
  size: number;
  seconds: number;
  connections: number;
}

export async function measureSize(
  context: SizeContext,
): Promise<{ rows: Row[]; memory?: BenchResults['memory'] }> {
  const { stack, nginx, production, embedded, size, seconds, connections } = context;
  const rows: Row[] = [];
  const redisPids = stack.redis.nodes.map((node) => node.process.pid!);
  const s3Pid = stack.s3.pids()[0];
  const blob = randomFillSync(Buffer.allocUnsafe(size));
  const key = md5(blob);
  writeFileSync(join(nginx.root, key), blob);
  for (const plane of [production, embedded]) {
    const response = await fetch(`${plane.url}/v1/blobs/${key}`, { method: 'PUT', body: blob });
    if (response.status !== 201)
      throw new Error(`Preloading ${size} bytes answered ${response.status}`);
  }
  await waitForDrain(production.url, 600_000);
  const s3 = s3Client(stack.s3.endpoint);
  const signed = await getSignedUrl(
    s3,
    new GetObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key) }),
    { expiresIn: 3600 },
  );
  s3.destroy();
  const systems: Omit<Served, 'connections'>[] = [
    {
      system: PRODUCTION,
      url: `${production.url}/v1/blobs/${key}`,
      server: production.child.pid,
      backends: redisPids,
      size,
      seconds,
    },
    {
      system: EMBEDDED,
      url: `${embedded.url}/v1/blobs/${key}`,
      server: embedded.child.pid,
      size,
      seconds,
    },
    {
      system: 'nginx (static file)',
      url: `${nginx.url}/${key}`,
      server: nginx.workerPid(),
      size,
      seconds,
    },
    { system: 'S3 direct (versitygw)', url: signed, server: s3Pid, size, seconds },
  ];
  if (size === 4 * KiB) {
    // The runtime's floor for a small hit, beside the data planes (bench/bare-node.ts).
    const bare = await startBareNode(join(nginx.root, key));
    systems.push({ system: BARE_NODE, url: bare.url, server: bare.pid, size, seconds });
  }
  for (const served of systems) {
    await warmUp(served, connections);
    rows.push(await measureGet({ ...served, connections }));
  }
  // Latency without queueing: one connection at a time.
  if (size === 4 * KiB)
    for (const served of [systems[0]!, systems[3]!, systems[2]!])
      rows.push(await measureGet({ ...served, connections: 1 }));
  const memory =
    size === 256 * MiB
      ? await servingMemory(stack, `/v1/blobs/${key}`, size, { connections, seconds: 2 * seconds })
      : undefined;
  const requests = Math.max(8, Math.min(20_000, Math.floor((2 * 1024 * MiB) / size)));
  // SET first (GET reads what it stored), each alone so the servers' CPU is its own.
  for (const test of ['SET', 'GET'] as const) {
    const { result, cpuSeconds } = await cpuSecondsDuring(redisPids, () =>
      redisBenchmarkTests(stack.redis.masters()[0]!, {
        size,
        requests,
        connections,
        tests: [test],
      }),
    );
    const op = test === 'SET' ? 'PUT' : 'GET';
    rows.push({
      op,
      system: 'Redis (redis-benchmark)',
      size,
      connections,
      ...result.get(test)!,
      serverCpuSeconds: cpuSeconds,
    });
  }
  if (size === 4 * KiB) {
    const result = await fsyncLoop(join(context.dir, 'fsync-loop'), {
      size,
      count: putCountFor(size),
      connections,
    });
    rows.push({ op: 'PUT', system: FSYNC_LOOP, size, connections, ...result });
    // The same loop with the name made durable too, over as many directories as the
    // embedded tier uses: what that tier must do at least before it answers.
    const durable = await fsyncLoop(join(context.dir, 'fsync-loop'), {
      size,
      count: putCountFor(size),
      connections,
      durable: true,
    });
    rows.push({ op: 'PUT', system: DURABLE_FSYNC_LOOP, size, connections, ...durable });
    // That durable write behind a bare HTTP server, driven like the data planes: the floor
    // of an HTTP upload here, with no checks, meta file, cache or logging.
    const floor = await putFloor(join(context.dir, 'put-floor'), {
      size,
      count: putCountFor(size),
      connections,
    });
    rows.push({ op: 'PUT', system: PUT_FLOOR, size, connections, ...floor });
    // The production tier's floor: a bare HTTP server storing each body with one SET, and
    // answering after a replica confirmed it (WAIT 1, shared) or, to tell HTTP's cost from
    // replication's, after the SET alone (bench/replicated-put-floor.ts).
    for (const replicated of [false, true]) {
      const result = await replicatedPutFloor(stack.env().BLOBCACHE_REDIS_NODES!, {
        size,
        count: putCountFor(size),
        connections,
        replicated,
      });
      const system = replicated ? REPLICATED_PUT_FLOOR : UNREPLICATED_PUT_FLOOR;
      rows.push({ op: 'PUT', system, size, connections, ...result });
    }
  }
  for (const [system, plane] of [
    [PRODUCTION, production],
    [EMBEDDED, embedded],
  ] as const) {
    const sampler = new ProcessSampler(plane.child.pid!);
    sampler.start();
    const { result, cpuSeconds } = await cpuSecondsDuring(
      system === PRODUCTION ? redisPids : [],
      (): Promise<LoadResult> =>
        putLoad(plane.url, { size, count: putCountFor(size), connections, seed: size }),
    );
    const sampled = sampler.stop();
    rows.push({
      op: 'PUT',
      system,
      size,
      connections,
      ...result,
      startRssMiB: sampled.startRssMiB,
      peakRssMiB: sampled.peakRssMiB,
      cpuPercent: sampled.cpuPercent,
      serverCpuSeconds: sampled.cpuSeconds,
      ...(system === PRODUCTION ? { backendCpuSeconds: cpuSeconds } : {}),
    });
    process.stderr.write(
      `[bench] PUT ${system} ${size} B: ${result.megabytesPerSecond.toFixed(0)} MB/s (${result.errors} errors)\n`,
    );
    // The production plane goes on writing its uploads behind to S3 after it answered them;
    // the next system is measured once that is done, not while it takes the CPU and disk.
    if (system === PRODUCTION) await waitForDrain(production.url, 600_000);
  }
  // Keep memory for the next size: the blobs are in S3, Redis may start empty.
  await run('redis-cli', [
    '--cluster',
    'call',
    `127.0.0.1:${stack.redis.masters()[0]}`,
    'FLUSHALL',
  ]);
  await rm(join(nginx.root, key));
  return { rows, memory };
}
