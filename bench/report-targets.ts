/**
 * The targets, each met or not with the measured ratio, from one run's results. A
 * target whose measurements were not run (BENCH_ONLY, BENCH_SIZES) says so.
 */
import { find, sizeLabel, type Row } from './report-rows.ts';
import type { BenchResults } from './report.ts';
import {
  BARE_NODE,
  DURABLE_FSYNC_LOOP,
  EMBEDDED,
  FSYNC_LOOP,
  MODELLED_PRODUCTION,
  MODELLED_S3,
  NGINX_CACHE,
  PRODUCTION,
  PUT_FLOOR,
  REPLICATED_PUT_FLOOR,
  UNREPLICATED_PUT_FLOOR,
} from './systems.ts';

export interface Target {
  target: string;
  measured: string;
  /** undefined: not run. */
  met?: boolean;
  limit: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const NOT_RUN = { measured: 'not run', limit: '' };

function ratioTarget(
  target: string,
  numerator: number | undefined,
  denominator: number | undefined,
  at: number,
  limit = '',
): Target {
  if (numerator === undefined || denominator === undefined || !(denominator > 0))
    return { target, ...NOT_RUN };
  const ratio = numerator / denominator;
  return { target, measured: `${ratio.toFixed(2)} ×`, met: ratio >= at, limit };
}

/**
 * The embedded PUT against what it must do at least: the loop that also makes each name
 * durable, and that loop behind a bare HTTP server (the floor of a durable HTTP upload).
 */
function durableFloorNote(
  embedded: number | undefined,
  durableLoop: number | undefined,
  floor: number | undefined,
): string {
  if (embedded === undefined) return '';
  const against = (label: string, rate: number | undefined): string[] =>
    rate === undefined || !(rate > 0)
      ? []
      : [`${(embedded / rate).toFixed(2)} × ${label} (${rate.toFixed(0)}/s)`];
  return [
    ...against('the loop that also fsyncs the directory', durableLoop),
    ...against('a bare HTTP server doing that', floor),
  ].join('; ');
}

/**
 * The production PUT against the bare HTTP servers that only store the body in Redis
 * (bench/replicated-put-floor.ts), and what those reach of redis-benchmark's rate: the
 * part of the gap that HTTP and replication leave to any design on this machine.
 */
function replicatedFloorNote(
  production: number | undefined,
  redisBenchmark: number | undefined,
  unreplicated: number | undefined,
  replicated: number | undefined,
): string {
  if (production === undefined || redisBenchmark === undefined) return '';
  const floor = (label: string, rate: number | undefined): string[] =>
    rate === undefined || !(rate > 0)
      ? []
      : [
          `a bare node:http server doing ${label}: ${(rate / redisBenchmark).toFixed(2)} × ` +
            `redis-benchmark (${rate.toFixed(0)}/s; this tier ${(production / rate).toFixed(2)} × it)`,
        ];
  return [...floor('SET', unreplicated), ...floor('SET + WAIT 1', replicated)].join('; ');
}

/** A target checked at every size measured: met when `ok` holds at each. */
function perSize(
  target: string,
  ratios: { size: number; ratio: number }[],
  ok: (ratio: number) => boolean,
): Target {
  if (ratios.length === 0) return { target, ...NOT_RUN };
  return {
    target,
    measured: ratios
      .map((entry) => `${sizeLabel(entry.size)} ${entry.ratio.toFixed(2)} ×`)
      .join(', '),
    met: ratios.every((entry) => ok(entry.ratio)),
    limit: '',
  };
}

function hitsAgainstNginxCache(results: BenchResults): Target {
  const target = "hits at every size ≥ 1.0 × the nginx caching proxy's MB/s";
  const cacheRows = (results.honest?.rows ?? []).filter(
    (row) => row.system === NGINX_CACHE && row.connections > 1,
  );
  const ratios = cacheRows.flatMap((cache) => {
    const ours = find(results.rows, 'GET', PRODUCTION, cache.size, cache.connections);
    return ours === undefined
      ? []
      : [{ size: cache.size, ratio: ours.megabytesPerSecond / cache.megabytesPerSecond }];
  });
  return perSize(target, ratios, (ratio) => ratio >= 1);
}

function stormAgainstNginxCache(results: BenchResults): Target {
  const target = 'fewer S3 GETs than the nginx caching proxies in the miss storm over 3 instances';
  const ours = results.honest?.storms.find((storm) => storm.system === MODELLED_PRODUCTION);
  const theirs = results.honest?.storms.find((storm) => storm.system === NGINX_CACHE);
  if (ours === undefined || theirs === undefined) return { target, ...NOT_RUN };
  return {
    target,
    measured: `${ours.s3Gets} against ${theirs.s3Gets} (${ours.requests} requests, bodies correct: ${ours.allCorrect && theirs.allCorrect})`,
    met: ours.s3Gets < theirs.s3Gets && ours.allCorrect,
    limit: '',
  };
}

function hotBlob(results: BenchResults): Target {
  const target = 'hot blob: Redis bytes served ≤ (data-plane processes + 1) × blob size';
  const { hot } = results;
  if (hot === undefined) return { target, ...NOT_RUN };
  const total = hot.masters.reduce((sum, master) => sum + master.bytesServed, 0);
  const bound = hot.processes + 1;
  return {
    target,
    measured: `${(total / hot.blobBytes).toFixed(2)} × (bound ${bound} ×; ${hot.clients} clients, ${sizeLabel(hot.blobBytes)})`,
    met: total <= bound * hot.blobBytes && hot.correct === hot.clients,
    limit: '',
  };
}

function hitLatency(results: BenchResults, size: number): Target {
  const rows = results.honest?.rows ?? [];
  const s3 = find(rows, 'GET', MODELLED_S3, size, 1)?.p50Ms;
  const ours = find(rows, 'GET', MODELLED_PRODUCTION, size, 1)?.p50Ms;
  return ratioTarget(
    `cache-hit p50 ≥ 10 × lower than a direct GET from the modelled S3 (${sizeLabel(size)}, one connection)`,
    s3,
    ours,
    10,
  );
}

function coldFirstByte(results: BenchResults): Target {
  const target = "cold miss's first byte ≤ 1.5 × a direct GET's from the modelled S3";
  const entries = results.honest?.firstBytes ?? [];
  const ratios = entries
    .filter((entry) => entry.system === MODELLED_PRODUCTION)
    .flatMap((entry) => {
      const direct = entries.find(
        (other) => other.system === MODELLED_S3 && other.size === entry.size,
      );
      return direct === undefined
        ? []
        : [{ size: entry.size, ratio: entry.firstByteMsP50 / direct.firstByteMsP50 }];
    });
  return perSize(target, ratios, (ratio) => ratio <= 1.5);
}

function memory(results: BenchResults): Target {
  const target = 'peak RSS < 256 MiB serving 256 MiB blobs';
  if (results.memory === undefined) return { target, ...NOT_RUN };
  return {
    target,
    measured: `${results.memory.peakRssMiB} MiB (a plane that only serves; idle ${results.memory.idleRssMiB} MiB)`,
    met: results.memory.peakRssMiB < 256 && results.memory.errors === 0,
    limit: '',
  };
}

/** What the bare node:http server (bench/bare-node.ts) reached, as the runtime's floor. */
function bareNodeLimit(
  bare: number | undefined,
  reference: number | undefined,
  prefix = '',
): string {
  if (bare === undefined || reference === undefined || !(reference > 0)) return '';
  return `${prefix}a bare node:http server answering from memory: ${(bare / reference).toFixed(2)} ×`;
}

const mbps = (row: Row | undefined): number | undefined => row?.megabytesPerSecond;
const rps = (row: Row | undefined): number | undefined => row?.requestsPerSecond;

export function targets(results: BenchResults): Target[] {
  const { rows, limits } = results;
  const get = (system: string, size: number, connections?: number): Row | undefined =>
    find(rows, 'GET', system, size, connections);
  const put = (system: string, size: number): Row | undefined => find(rows, 'PUT', system, size);
  return [
    ratioTarget(
      'GET 16 MiB through the production tier ≥ 1.0 × nginx MB/s',
      mbps(get(PRODUCTION, 16 * MiB)),
      mbps(get('nginx (static', 16 * MiB)),
      1,
    ),
    ratioTarget(
      'GET 256 MiB through the production tier ≥ 1.0 × nginx MB/s',
      mbps(get(PRODUCTION, 256 * MiB)),
      mbps(get('nginx (static', 256 * MiB)),
      1,
    ),
    {
      ...hitsAgainstNginxCache(results),
      limit: bareNodeLimit(
        rps(get(BARE_NODE, 4 * KiB)),
        rps(find(results.honest?.rows ?? [], 'GET', NGINX_CACHE, 4 * KiB, 16)),
        '4 KiB: ',
      ),
    },
    stormAgainstNginxCache(results),
    hotBlob(results),
    ratioTarget(
      '4 KiB PUT through the production tier ≥ 0.25 × redis-benchmark SET req/s (same size and connections)',
      rps(put(PRODUCTION, 4 * KiB)),
      rps(put('Redis', 4 * KiB)),
      0.25,
      replicatedFloorNote(
        rps(put(PRODUCTION, 4 * KiB)),
        rps(put('Redis', 4 * KiB)),
        rps(put(UNREPLICATED_PUT_FLOOR, 4 * KiB)),
        rps(put(REPLICATED_PUT_FLOOR, 4 * KiB)),
      ),
    ),
    ratioTarget(
      'embedded 4 KiB PUT ≥ 0.8 × a bare write + fsync + rename loop (same concurrency)',
      rps(put(EMBEDDED, 4 * KiB)),
      rps(put(FSYNC_LOOP, 4 * KiB)),
      0.8,
      durableFloorNote(
        rps(put(EMBEDDED, 4 * KiB)),
        rps(put(DURABLE_FSYNC_LOOP, 4 * KiB)),
        rps(put(PUT_FLOOR, 4 * KiB)),
      ),
    ),
    ratioTarget(
      "1 MiB PUT ≥ 0.5 × the machine's PUT ceiling",
      mbps(put(PRODUCTION, MiB)),
      limits?.putCeilingMegabytesPerSecond,
      0.5,
      limits === undefined
        ? ''
        : `ceiling ${limits.putCeilingMegabytesPerSecond.toFixed(0)} MB/s (MD5 + Redis CPU per MB)`,
    ),
    hitLatency(results, 4 * KiB),
    hitLatency(results, MiB),
    coldFirstByte(results),
    memory(results),
    ratioTarget(
      'hot GET 1 MiB ≥ 1.0 × nginx MB/s (met before, stays met)',
      mbps(get(PRODUCTION, MiB)),
      mbps(get('nginx (static', MiB)),
      1,
    ),
    ratioTarget(
      'hot GET 4 KiB ≥ 0.6 × nginx req/s (met before, stays met)',
      rps(get(PRODUCTION, 4 * KiB)),
      rps(get('nginx (static', 4 * KiB)),
      0.6,
      bareNodeLimit(rps(get(BARE_NODE, 4 * KiB)), rps(get('nginx (static', 4 * KiB))),
    ),
    results.storm === undefined
      ? { target: 'exactly one S3 GET in the miss storm (loopback S3)', ...NOT_RUN }
      : {
          target: 'exactly one S3 GET in the miss storm (loopback S3)',
          measured: `${results.storm.s3Gets}`,
          met: results.storm.s3Gets === 1,
          limit: '',
        },
  ];
}
