/** Load generators run as separate processes: wrk for GETs, redis-benchmark, and put-load.ts. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { GetLoadOptions, GetLoadResult } from './get-load.ts';
import type { LoadResult } from './load-result.ts';

export type { LoadResult } from './load-result.ts';

export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${command} exited with ${code}: ${err || out}`)),
    );
  });
}

/** GETs one URL with wrk from its own process. */
export async function wrkGet(
  url: string,
  options: { connections: number; seconds: number },
): Promise<LoadResult> {
  const out = await run('wrk', [
    '-t1',
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--timeout',
    '30s',
    '-s',
    join(import.meta.dirname, 'wrk-report.lua'),
    url,
  ]);
  const line = out.split('\n').find((candidate) => candidate.startsWith('{'));
  if (line === undefined) throw new Error(`wrk printed no summary: ${out}`);
  const summary = JSON.parse(line) as {
    requests: number;
    durationUs: number;
    bytes: number;
    socketErrors: number;
    non2xx: number;
    p50Us: number;
    p99Us: number;
  };
  const seconds = summary.durationUs / 1e6;
  return {
    requests: summary.requests,
    seconds,
    requestsPerSecond: summary.requests / seconds,
    megabytesPerSecond: summary.bytes / seconds / 1e6,
    p50Ms: summary.p50Us / 1000,
    p99Ms: summary.p99Us / 1000,
    errors: summary.socketErrors + summary.non2xx,
  };
}

/** redis-benchmark of the given tests (e.g. only SET, to attribute the servers' CPU to it). */
export async function redisBenchmarkTests(
  port: number,
  options: { size: number; requests: number; connections: number; tests: ('SET' | 'GET')[] },
): Promise<Map<'SET' | 'GET', LoadResult>> {
  const out = await run('redis-benchmark', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '--cluster',
    '-t',
    options.tests.join(',').toLowerCase(),
    '-d',
    String(options.size),
    '-n',
    String(options.requests),
    '-c',
    String(options.connections),
    '--csv',
  ]);
  const rows = out
    .split('\n')
    .filter((line) => line.startsWith('"SET"') || line.startsWith('"GET"'))
    .map((line) => line.split(',').map((cell) => cell.replaceAll('"', '')));
  const pick = (test: string): LoadResult => {
    const row = rows.find((cells) => cells[0] === test);
    if (row === undefined) throw new Error(`redis-benchmark printed no ${test} row: ${out}`);
    const rps = Number(row[1]);
    return {
      requests: options.requests,
      seconds: options.requests / rps,
      requestsPerSecond: rps,
      megabytesPerSecond: (rps * options.size) / 1e6,
      p50Ms: Number(row[4]),
      p99Ms: Number(row[6]),
      errors: 0,
    };
  };
  return new Map(options.tests.map((test) => [test, pick(test)]));
}

/** Uploads `count` distinct blobs of `size` bytes with put-load.ts in its own process. */
export async function putLoad(
  baseUrl: string,
  options: { size: number; count: number; connections: number; seed: number },
): Promise<LoadResult> {
  const out = await run(process.execPath, [
    join(import.meta.dirname, 'put-load.ts'),
    baseUrl,
    String(options.size),
    String(options.count),
    String(options.connections),
    String(options.seed),
  ]);
  return JSON.parse(out.trim().split('\n').pop()!) as LoadResult;
}

/** One-shot GETs (bench/get-load.ts) from a process of their own. */
export async function getLoadProcess(options: GetLoadOptions): Promise<GetLoadResult> {
  const out = await run(process.execPath, [
    join(import.meta.dirname, 'get-load.ts'),
    JSON.stringify(options),
  ]);
  return JSON.parse(out.trim().split('\n').pop()!) as GetLoadResult;
}

/** The bare write + fsync + rename loop (bench/fsync-loop.ts), in a process of its own. */
export async function fsyncLoop(
  dir: string,
  options: { size: number; count: number; connections: number; durable?: boolean },
): Promise<LoadResult> {
  const out = await run(process.execPath, [
    join(import.meta.dirname, 'fsync-loop.ts'),
    dir,
    String(options.size),
    String(options.count),
    String(options.connections),
    ...(options.durable === true ? ['durable'] : []),
  ]);
  return JSON.parse(out.trim().split('\n').pop()!) as LoadResult;
}

/**
 * Uploads to the bare HTTP server of bench/put-floor.ts (its own process, over `dir`) with
 * put-load.ts: the floor of a durable small upload over HTTP on this machine.
 */
export function putFloor(
  dir: string,
  options: { size: number; count: number; connections: number },
): Promise<LoadResult> {
  return loadFloorServer('put-floor.ts', [dir], {}, options);
}

/**
 * Uploads to the bare HTTP server of bench/replicated-put-floor.ts on the given Redis
 * Cluster: the floor of an upload acknowledged on a master and a replica (or, with
 * `replicated: false`, on the master alone) over HTTP on this machine.
 */
export function replicatedPutFloor(
  redisNodes: string,
  options: { size: number; count: number; connections: number; replicated: boolean },
): Promise<LoadResult> {
  return loadFloorServer(
    'replicated-put-floor.ts',
    options.replicated ? [] : ['unreplicated'],
    { BLOBCACHE_REDIS_NODES: redisNodes },
    options,
  );
}

/** Starts a floor server of bench/ (it prints its URL), loads it with put-load.ts, stops it. */
async function loadFloorServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  options: { size: number; count: number; connections: number },
): Promise<LoadResult> {
  const server = spawn(process.execPath, [join(import.meta.dirname, script), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      server.stdout.once('data', (chunk: Buffer) =>
        resolve((JSON.parse(chunk.toString()) as { url: string }).url),
      );
      server.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    });
    const { size, count, connections } = options;
    return await putLoad(url, { size, count, connections, seed: size });
  } finally {
    server.kill('SIGKILL');
  }
}
