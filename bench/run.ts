/**
 * `npm run bench`: starts Redis Cluster + S3 (versitygw), nginx and data-plane processes on
 * loopback, an S3 server behind a modelled link in a network namespace with nginx caching
 * proxies in front of it, drives load from separate processes (wrk, redis-benchmark,
 * put-load.ts, get-load.ts, fsync-loop.ts), and writes bench/results/<date>-<machine>.{json,
 * md,png} plus latest.{md,png}. Needs root (network namespace, TUN devices).
 *
 * Environment: BENCH_SECONDS (default 5), the length of each GET run; BENCH_SIZES (comma
 * separated byte counts) to run fewer sizes; BENCH_ONLY (comma separated: main, limits,
 * storm, drain, honest, hot) to run some sections; BENCH_HOT_BYTES and BENCH_HOT_CLIENTS
 * (default 256 MiB, 64) for the hot blob; BENCH_OUT, a folder to write the results to
 * instead of bench/results (which then keeps its latest.md); BENCH_PROFILE=1 writes a CPU
 * profile of the main table's production data plane to <out>/profiles (open it in Chrome's
 * DevTools), to show where the time goes where a target is not met.
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDataPlane, type SpawnedDataPlane } from '../test/harness/dataplane.ts';
import { startProductionStack } from '../test/harness/production.ts';
import { freePorts } from '../test/harness/services.ts';
import { mustUndo, undoAll, undoOnSignals } from './cleanup.ts';
import { honestS3 } from './honest-s3.ts';
import { hotBlob } from './hot-blob.ts';
import { run } from './load.ts';
import { drainRate, measurePutCosts, missStorm, putCeiling } from './loopback.ts';
import { measureSize } from './main-table.ts';
import { startNginx } from './nginx.ts';
import { profileTop } from './profile-top.ts';
import type { Row } from './report-rows.ts';
import { renderReport, type BenchResults } from './report.ts';

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
const SECTIONS = new Set(
  process.env.BENCH_ONLY?.split(',') ?? ['main', 'limits', 'storm', 'drain', 'honest', 'hot'],
);
const HOT_BYTES = Number(process.env.BENCH_HOT_BYTES ?? 256 * MiB);
const HOT_CLIENTS = Number(process.env.BENCH_HOT_CLIENTS ?? 64);
const OUT = process.env.BENCH_OUT ?? join(import.meta.dirname, 'results');
const connectionsFor = (size: number): number =>
  size >= 256 * MiB ? 4 : size >= 16 * MiB ? 8 : 16;

undoOnSignals();

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blobcache-bench-'));
  mustUndo(() => rm(dir, { recursive: true, force: true }));
  const stack = await startProductionStack({ maxMemory: '3gb' });
  // Stops every data plane spawned through it too.
  mustUndo(() => stack.stop());
  const results: BenchResults = {
    date: new Date().toISOString(),
    machine: {
      arch: arch(),
      cpus: cpus().length,
      model: cpus()[0]?.model ?? 'unknown',
      node: process.version,
    },
    seconds: SECONDS,
    rows: [],
    sections: [...SECTIONS],
  };
  if (SECTIONS.has('main')) {
    const nginx = await startNginx(join(dir, 'nginx'), await freePorts(1));
    // The planes run the compiled build, as the container image does. The measured plane
    // talks to S3 directly; only the miss storm goes through the counting proxy.
    const profile: Record<string, string> =
      process.env.BENCH_PROFILE === '1'
        ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(OUT, 'profiles')}` }
        : {};
    const production = await stack.spawn(
      { BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint, ...profile },
      { compiled: true },
    );
    const embedded: SpawnedDataPlane = await spawnDataPlane(
      { BLOBCACHE_DATA_DIR: join(dir, 'embedded'), BLOBCACHE_MAX_BLOB_BYTES: '1Gi' },
      { compiled: true },
    );
    mustUndo(() => embedded.stop('SIGKILL'));
    const rows: Row[] = results.rows;
    for (const size of SIZES) {
      const measured = await measureSize({
        stack,
        nginx,
        production,
        embedded,
        dir,
        size,
        seconds: SECONDS,
        connections: connectionsFor(size),
      });
      rows.push(...measured.rows);
      if (measured.memory !== undefined) results.memory = measured.memory;
    }
    // A graceful exit, which is when node writes the profile.
    if (process.env.BENCH_PROFILE === '1') {
      await production.stop('SIGTERM');
      const profiles = join(OUT, 'profiles');
      const newest = readdirSync(profiles)
        .filter((name) => name.endsWith('.cpuprofile'))
        .sort()
        .pop();
      if (newest !== undefined)
        results.profile = { file: newest, top: profileTop(join(profiles, newest)) };
    }
  }
  if (SECTIONS.has('limits')) {
    const putLimits = await measurePutCosts(stack);
    // The S3 server's CPU per MB comes from the drain; without it, only the burst ceiling.
    results.drain = SECTIONS.has('drain') ? await drainRate(stack) : undefined;
    results.limits = putCeiling(putLimits, results.drain?.s3CpuMsPerMegabyte ?? Number.NaN);
  } else if (SECTIONS.has('drain')) results.drain = await drainRate(stack);
  if (SECTIONS.has('storm')) results.storm = await missStorm(stack);
  if (SECTIONS.has('honest'))
    results.honest = await honestS3(stack, dir, {
      sizes: SIZES,
      seconds: SECONDS,
      connectionsFor,
      firstByteSamples: 5,
      stormBytes: Math.min(16 * MiB, Math.max(...SIZES)),
      stormRequests: 100,
    });
  if (SECTIONS.has('hot'))
    results.hot = await hotBlob(stack, {
      blobBytes: HOT_BYTES,
      clients: HOT_CLIENTS,
      processes: 3,
    });
  const name = `${results.date.slice(0, 10)}-${arch()}-${cpus().length}cpu`;
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `${name}.json`), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(OUT, `${name}.md`), renderReport(results, `${name}.png`));
  await run('/usr/bin/python3', [
    join(import.meta.dirname, 'plot.py'),
    join(OUT, `${name}.json`),
    join(OUT, `${name}.png`),
  ]);
  copyFileSync(join(OUT, `${name}.md`), join(OUT, 'latest.md'));
  copyFileSync(join(OUT, `${name}.png`), join(OUT, 'latest.png'));
  process.stdout.write(renderReport(results, `${name}.png`));
}

try {
  await main();
} finally {
  await undoAll();
}
