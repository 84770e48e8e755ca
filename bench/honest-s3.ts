/**
 * The data plane against an S3 that behaves like S3 (bench/modelled-s3.ts), side by side
 * with the peer a platform team would set up instead: one nginx caching proxy per data-plane
 * process in front of the same S3 server. Measures, per size: a cold miss's time to first
 * byte (data plane, nginx, a direct S3 GET), hit latency on one connection, hit throughput
 * of the nginx caches and direct-S3 throughput over the link; then a miss storm over three
 * instances of each, with S3 GETs counted from the S3 server's own access log.
 */
import { join } from 'node:path';
import type { ProductionStack } from '../test/harness/production.ts';
import { timedGet } from './get-load.ts';
import { getLoadProcess } from './load.ts';
import { measureGet, warmUp } from './measure.ts';
import { startModelledS3, type LinkModel } from './modelled-s3.ts';
import type { Row } from './report-rows.ts';
import {
  LOOPBACK,
  MODELLED,
  seed,
  startSystems,
  stopSystems,
  USER_AGENTS,
  type Systems,
} from './s3-readers.ts';
import { MODELLED_PRODUCTION, NGINX_CACHE } from './systems.ts';

export interface FirstByte {
  system: string;
  size: number;
  samples: number;
  firstByteMsP50: number;
  firstByteMsMax: number;
  lastByteMsP50: number;
  /** S3 requests by operation per cold miss, from the S3 access log (modelled S3 only). */
  s3RequestsPerMiss?: Record<string, number>;
}

export interface Storm {
  system: string;
  processes: number;
  requests: number;
  blobBytes: number;
  s3Gets: number;
  allCorrect: boolean;
  firstByteMsP50: number;
  lastByteMs: number;
}

export interface HonestS3Results {
  model: LinkModel;
  rows: Row[];
  firstBytes: FirstByte[];
  /** The same cold misses against the loopback S3 server. */
  loopbackFirstBytes: FirstByte[];
  storms: Storm[];
  /** What the link forwarded and dropped over the whole section. */
  link: Record<string, number>;
}

export interface HonestS3Options {
  sizes: number[];
  seconds: number;
  connectionsFor(size: number): number;
  /** Cold misses timed per size and system. */
  firstByteSamples: number;
  stormBytes: number;
  stormRequests: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

async function firstBytes(
  systems: Systems,
  size: number,
  samples: number,
): Promise<{
  results: FirstByte[];
  hot: Awaited<ReturnType<typeof seed>>;
  /** Fills in each miss's S3 requests (call it a while after the misses). */
  countRequests(): void;
}> {
  const times: Record<string, { first: number[]; last: number[] }> = {};
  const { names } = systems;
  const seeded: { key: string; before: Record<'plane' | 'cache', Record<string, number>> }[] = [];
  let hot: Awaited<ReturnType<typeof seed>> | undefined;
  for (let sample = 0; sample < samples; sample++) {
    hot = await seed(systems, size);
    // Seeding itself went through the AWS SDK: what the planes ask afterwards is theirs.
    const key = hot.key;
    const before = (who: 'plane' | 'cache'): Record<string, number> =>
      systems.log?.operations(key, USER_AGENTS[who]) ?? {};
    seeded.push({ key, before: { plane: before('plane'), cache: before('cache') } });
    for (const [system, url] of [
      [names.s3, hot.urls.s3],
      [names.plane, hot.urls.plane[0]!],
      [names.cache, hot.urls.cache[0]!],
    ] as const) {
      const got = await timedGet(
        url,
        { expectedBytes: size, md5: hot.md5 },
        systems.agents[system],
      );
      if (!got.correct) throw new Error(`A cold GET of ${size} bytes from ${system} failed`);
      const entry = (times[system] ??= { first: [], last: [] });
      entry.first.push(got.firstByteMs);
      entry.last.push(got.lastByteMs);
    }
  }
  const results: FirstByte[] = Object.entries(times).map(([system, { first, last }]) => ({
    system,
    size,
    samples,
    firstByteMsP50: median(first),
    firstByteMsMax: Math.max(...first),
    lastByteMsP50: median(last),
  }));
  // Counted later, once anything a miss started in the background has reached S3 too.
  const countRequests = (): void => {
    if (systems.log === undefined) return;
    for (const who of ['plane', 'cache'] as const) {
      const requests: Record<string, number> = {};
      for (const { key, before } of seeded)
        for (const [operation, count] of Object.entries(
          systems.log.operations(key, USER_AGENTS[who]),
        ))
          requests[operation] =
            (requests[operation] ?? 0) + (count - (before[who][operation] ?? 0)) / samples;
      const entry = results.find((result) => result.system === names[who]);
      if (entry !== undefined) entry.s3RequestsPerMiss = requests;
    }
  };
  for (const result of results)
    process.stderr.write(
      `[bench] cold miss ${result.system} ${size} B: first byte ${result.firstByteMsP50.toFixed(1)} ms\n`,
    );
  return { results, hot: hot!, countRequests };
}

async function storm(systems: Systems, system: string, options: HonestS3Options): Promise<Storm> {
  const blob = await seed(systems, options.stormBytes);
  const who = system === systems.names.cache ? 'cache' : 'plane';
  const urls = blob.urls[who];
  const gets = (): number => systems.log?.gets(blob.key, USER_AGENTS[who]) ?? Number.NaN;
  const before = gets();
  const result = await getLoadProcess({
    urls,
    requests: options.stormRequests,
    concurrency: options.stormRequests,
    expectedBytes: options.stormBytes,
    md5: blob.md5,
  });
  const outcome = {
    system,
    processes: urls.length,
    requests: options.stormRequests,
    blobBytes: options.stormBytes,
    s3Gets: gets() - before,
    allCorrect: result.correct === options.stormRequests,
    firstByteMsP50: result.firstByteMs.p50,
    lastByteMs: result.lastByteMs.max,
  };
  process.stderr.write(
    `[bench] miss storm ${system}: ${outcome.s3Gets} S3 GETs, last byte ${outcome.lastByteMs.toFixed(0)} ms\n`,
  );
  return outcome;
}

/** Hit latency on one connection (sizes up to 1 MiB), then throughput under load. */
async function hitsAndDirect(
  systems: Systems,
  hot: Awaited<ReturnType<typeof seed>>,
  s3Pids: number[],
  size: number,
  options: HonestS3Options,
): Promise<Row[]> {
  const { names } = systems;
  const runs = [
    {
      who: 'plane' as const,
      system: names.plane,
      url: hot.urls.plane[0]!,
      server: systems.planes[0]!.child.pid,
      backends: [...systems.redisPids, ...s3Pids],
    },
    {
      who: 'cache' as const,
      system: names.cache,
      url: hot.urls.cache[0]!,
      server: systems.caches[0]!.workerPid(),
      backends: s3Pids,
    },
    { who: undefined, system: names.s3, url: hot.urls.s3, server: s3Pids[0] },
  ];
  const rows: Row[] = [];
  for (const clients of [...(size <= MiB ? [1] : []), options.connectionsFor(size)])
    for (const { who, ...run } of runs) {
      // Hits under load do not touch S3: the main table has the data plane's.
      if (clients > 1 && run.system === names.plane) continue;
      const gets = (): number =>
        who === undefined ? 0 : (systems.log?.gets(hot.key, USER_AGENTS[who]) ?? 0);
      // Warmed like the main table's runs, before S3's GETs are counted (docs/decisions/0072).
      await warmUp({ ...run, size }, clients);
      const before = gets();
      const row = await measureGet({
        ...run,
        size,
        connections: clients,
        seconds: options.seconds,
      });
      // A hit run that reached S3 would measure S3, not the cache: the report shows it.
      const reached = gets() - before;
      rows.push(
        reached > 0 ? { ...row, system: `${row.system} (${reached} S3 GETs meanwhile)` } : row,
      );
    }
  return rows;
}

export async function honestS3(
  stack: ProductionStack,
  dir: string,
  options: HonestS3Options,
): Promise<HonestS3Results> {
  const s3 = await startModelledS3(join(dir, 'modelled-s3'));
  let results!: HonestS3Results;
  try {
    const systems = await startSystems(
      stack,
      dir,
      { endpoint: s3.endpoint, log: s3 },
      MODELLED,
      3,
      'modelled',
    );
    await firstBytes(systems, 4 * KiB, 1);
    const rows: Row[] = [];
    const cold: FirstByte[] = [];
    try {
      for (const size of options.sizes) {
        const timed = await firstBytes(systems, size, options.firstByteSamples);
        rows.push(...(await hitsAndDirect(systems, timed.hot, s3.server.pids(), size, options)));
        timed.countRequests();
        cold.push(...timed.results);
      }
      const storms = [
        await storm(systems, MODELLED_PRODUCTION, options),
        await storm(systems, NGINX_CACHE, options),
      ];
      results = {
        model: s3.model,
        rows,
        firstBytes: cold,
        storms,
        link: {},
        loopbackFirstBytes: [],
      };
    } finally {
      await stopSystems(systems);
    }
    // The same cold misses against the loopback S3 server, as the second line.
    const loopback = await startSystems(
      stack,
      dir,
      { endpoint: stack.s3.endpoint },
      LOOPBACK,
      1,
      'loopback',
    );
    await firstBytes(loopback, 4 * KiB, 1);
    try {
      for (const size of options.sizes)
        results.loopbackFirstBytes.push(
          ...(await firstBytes(loopback, size, options.firstByteSamples)).results,
        );
    } finally {
      await stopSystems(loopback);
    }
  } finally {
    const link = await s3.stop();
    // Only reached with results when every measurement ran (else the error propagates).
    if ((results as HonestS3Results | undefined) !== undefined) results.link = link;
  }
  return results;
}
