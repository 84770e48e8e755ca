/** Turns benchmark results into the Markdown report, with ratios and the targets. */
import type { LoadResult } from './load.ts';

export interface Row extends LoadResult {
  op: 'GET' | 'PUT';
  system: string;
  size: number;
  connections: number;
  /** Resident set when the run began: what earlier runs left behind. */
  startRssMiB?: number;
  peakRssMiB?: number;
  cpuPercent?: number;
}

export interface BenchResults {
  date: string;
  machine: { arch: string; cpus: number; model: string; node: string };
  seconds: number;
  rows: Row[];
  storm: {
    requests: number;
    processes: number;
    blobBytes: number;
    s3Gets: number;
    allCorrect: boolean;
    timeToLastByteMs: number;
  };
  drain: {
    blobs: number;
    blobBytes: number;
    seconds: number;
    blobsPerSecond: number;
    megabytesPerSecond: number;
    /** CPU the S3 server spent per MB it stored while draining. */
    s3CpuMsPerMegabyte?: number;
  };
  /** A fresh data plane that only serves the largest blob (absent in older results). */
  memory?: {
    blobBytes: number;
    connections: number;
    seconds: number;
    megabytesPerSecond: number;
    errors: number;
    idleRssMiB: number;
    peakRssMiB: number;
  };
  /** What this machine allows at best, measured in the same run (absent in older results). */
  limits?: {
    cores: number;
    /** MD5 throughput of one core (node:crypto, 1 MiB updates). */
    md5MegabytesPerSecond: number;
    md5CpuMsPerMegabyte: number;
    /** CPU of every Redis server per MB stored by redis-benchmark SET of 1 MiB values. */
    redisSetCpuMsPerMegabyte: number;
    s3CpuMsPerMegabyte: number;
    /** cores ÷ (MD5 + Redis CPU per MB): no PUT that verifies its key can beat it here. */
    putCeilingMegabytesPerSecond: number;
    /** The same with the S3 server's CPU per MB: the rate that can also be kept durable. */
    sustainedPutCeilingMegabytesPerSecond: number;
  };
}

const PRODUCTION = 'blobcache (Redis + S3)';

export function sizeLabel(size: number): string {
  if (size >= 1024 * 1024) return `${size / 1024 / 1024} MiB`;
  return `${size / 1024} KiB`;
}

/** A result row; by default the loaded run (more than one connection), or exactly `connections`. */
function find(
  results: BenchResults,
  op: string,
  system: string,
  size: number,
  connections?: number,
): Row | undefined {
  return results.rows.find(
    (row) =>
      row.op === op &&
      row.system.startsWith(system) &&
      row.size === size &&
      (connections === undefined ? row.connections > 1 : row.connections === connections),
  );
}

const fixed = (value: number | undefined, digits = 1): string =>
  value === undefined ? '–' : value.toFixed(digits);

export function targets(
  results: BenchResults,
): { target: string; measured: string; met: boolean; limit: string }[] {
  const ratio = (a: number | undefined, b: number | undefined): number => (a ?? 0) / (b || 1);
  const hit1m = ratio(
    find(results, 'GET', PRODUCTION, 1048576)?.megabytesPerSecond,
    find(results, 'GET', 'nginx', 1048576)?.megabytesPerSecond,
  );
  const hit4k = ratio(
    find(results, 'GET', PRODUCTION, 4096)?.requestsPerSecond,
    find(results, 'GET', 'nginx', 4096)?.requestsPerSecond,
  );
  // Latency is compared one request at a time, so queueing under load does not mask it.
  const p50 = ratio(
    find(results, 'GET', 'S3 direct', 4096, 1)?.p50Ms,
    find(results, 'GET', PRODUCTION, 4096, 1)?.p50Ms,
  );
  const put1m = ratio(
    find(results, 'PUT', PRODUCTION, 1048576)?.megabytesPerSecond,
    find(results, 'PUT', 'Redis', 1048576)?.megabytesPerSecond,
  );
  const s3p50 = find(results, 'GET', 'S3 direct', 4096, 1)?.p50Ms;
  const nginxP50 = find(results, 'GET', 'nginx', 4096, 1)?.p50Ms;
  const redisSet = find(results, 'PUT', 'Redis', 1048576)?.megabytesPerSecond;
  const { limits } = results;
  const putLimit =
    limits === undefined || redisSet === undefined
      ? ''
      : `ceiling ${ratio(limits.putCeilingMegabytesPerSecond, redisSet).toFixed(2)} × (MD5 + Redis CPU per MB), ` +
        `${ratio(limits.sustainedPutCeilingMegabytesPerSecond, redisSet).toFixed(2)} × kept durable (+ S3)`;
  const largestGet = results.rows.find(
    (row) => row.op === 'GET' && row.system === PRODUCTION && row.size === 256 * 1048576,
  );
  const rss = largestGet?.peakRssMiB ?? Number.NaN;
  const held =
    largestGet?.startRssMiB === undefined
      ? ''
      : ` (it held ${largestGet.startRssMiB} MiB when the run began)`;
  return [
    {
      target: 'hot GET 1 MiB ≥ 1.0 × nginx MB/s',
      measured: `${hit1m.toFixed(2)} ×`,
      met: hit1m >= 1.0,
      limit: '',
    },
    {
      target: 'hot GET 4 KiB ≥ 0.6 × nginx req/s',
      measured: `${hit4k.toFixed(2)} ×`,
      met: hit4k >= 0.6,
      limit: '',
    },
    {
      target: 'hit p50 ≥ 10 × lower than direct S3 (4 KiB, one connection)',
      measured: `${p50.toFixed(1)} ×`,
      met: p50 >= 10,
      limit:
        nginxP50 === undefined
          ? ''
          : `nginx (one connection) is ${ratio(s3p50, nginxP50).toFixed(1)} × lower than this S3 server`,
    },
    {
      target: 'PUT 1 MiB ≥ 0.7 × redis-benchmark SET MB/s',
      measured: `${put1m.toFixed(2)} ×`,
      met: put1m >= 0.7,
      limit: putLimit,
    },
    results.memory === undefined
      ? {
          target: 'peak RSS < 256 MiB serving 256 MiB blobs',
          measured: Number.isFinite(rss) ? `${rss} MiB` : 'not run',
          met: rss > 0 && rss < 256,
          limit: '',
        }
      : {
          target: 'peak RSS < 256 MiB serving 256 MiB blobs',
          measured:
            `${results.memory.peakRssMiB} MiB (a plane that only serves; idle ${results.memory.idleRssMiB} MiB); ` +
            `${rss} MiB in the long-lived plane below, after every earlier run${held}`,
          met: results.memory.peakRssMiB < 256 && results.memory.errors === 0,
          limit: '',
        },
    {
      target: 'exactly one S3 GET in the miss storm',
      measured: `${results.storm.s3Gets}`,
      met: results.storm.s3Gets === 1,
      limit: '',
    },
  ];
}

export function renderReport(results: BenchResults, plot: string): string {
  const lines: string[] = [];
  lines.push(`# blobcache benchmark — ${results.date.slice(0, 10)}`);
  lines.push('');
  lines.push(
    `Machine: ${results.machine.cpus} × ${results.machine.model} (${results.machine.arch}), Node ${results.machine.node}; ` +
      `load generators (wrk, redis-benchmark, bench/put-load.ts) on the same machine. GET runs last ${results.seconds} s each.`,
  );
  lines.push('');
  lines.push('## Targets');
  lines.push('');
  lines.push("| target | measured | met | this machine's limit |");
  lines.push('|---|---|---|---|');
  for (const row of targets(results))
    lines.push(
      `| ${row.target} | ${row.measured} | ${row.met ? 'yes' : '**no**'} | ${row.limit} |`,
    );
  for (const op of ['GET', 'PUT'] as const) {
    lines.push('');
    lines.push(`## ${op}`);
    lines.push('');
    lines.push(
      '| size | system | conns | req/s | MB/s | p50 ms | p99 ms | errors | RSS at start MiB | peak RSS MiB | CPU % | ÷ nginx | ÷ S3 |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const row of results.rows.filter((candidate) => candidate.op === op)) {
      const nginx = find(results, 'GET', 'nginx', row.size);
      const s3 = find(results, 'GET', 'S3 direct', row.size);
      const vs = (reference: Row | undefined): string =>
        op === 'GET' && reference !== undefined && row.system.startsWith('blobcache')
          ? (row.megabytesPerSecond / reference.megabytesPerSecond).toFixed(2)
          : '';
      lines.push(
        `| ${sizeLabel(row.size)} | ${row.system} | ${row.connections} | ${fixed(row.requestsPerSecond, 0)} | ${fixed(row.megabytesPerSecond, 0)} | ` +
          `${fixed(row.p50Ms, 2)} | ${fixed(row.p99Ms, 2)} | ${row.errors} | ${fixed(row.startRssMiB)} | ${fixed(row.peakRssMiB)} | ${fixed(row.cpuPercent, 0)} | ${vs(nginx)} | ${vs(s3)} |`,
      );
    }
  }
  lines.push('');
  lines.push('## Cold-miss storm and write-behind drain');
  lines.push('');
  const { storm, drain } = results;
  lines.push(
    `- ${storm.requests} concurrent GETs of one ${sizeLabel(storm.blobBytes)} blob absent from Redis, over ${storm.processes} data-plane processes: ` +
      `**${storm.s3Gets} S3 GET**, last byte after ${storm.timeToLastByteMs} ms, all bodies correct: ${storm.allCorrect}.`,
  );
  lines.push(
    `- Journal drain (${drain.blobs} × ${sizeLabel(drain.blobBytes)} acknowledged while S3 was down): ${drain.seconds.toFixed(1)} s, ` +
      `${drain.blobsPerSecond.toFixed(0)} blobs/s, ${drain.megabytesPerSecond.toFixed(0)} MB/s.`,
  );
  const { limits } = results;
  if (limits !== undefined) {
    lines.push('');
    lines.push('## Machine limits (measured in this run)');
    lines.push('');
    lines.push(
      `- MD5 on one core: ${limits.md5MegabytesPerSecond.toFixed(0)} MB/s (${limits.md5CpuMsPerMegabyte.toFixed(2)} CPU ms per MB). ` +
        'Every PUT hashes each byte once to check its key, on one core per upload, so one data-plane process cannot accept more than this.',
    );
    lines.push(
      `- Redis servers: ${limits.redisSetCpuMsPerMegabyte.toFixed(2)} CPU ms per MB stored and replicated (redis-benchmark SET, 1 MiB values); ` +
        `S3 server: ${limits.s3CpuMsPerMegabyte.toFixed(2)} CPU ms per MB stored (write-behind drain).`,
    );
    lines.push(
      `- PUT ceiling on ${limits.cores} cores, counting only those costs: ${limits.putCeilingMegabytesPerSecond.toFixed(0)} MB/s; ` +
        `${limits.sustainedPutCeilingMegabytesPerSecond.toFixed(0)} MB/s if every MB must also reach S3. ` +
        'The HTTP client, the data plane and the load generator need CPU on top, so the real ceiling is lower.',
    );
  }
  lines.push('');
  lines.push(`![throughput by blob size](${plot})`);
  lines.push('');
  return lines.join('\n');
}
