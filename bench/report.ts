/**
 * Turns benchmark results into the Markdown report: the targets (report-targets.ts), the
 * main GET and PUT tables with CPU per request, the modelled-S3 section side by side with
 * nginx caching proxies, the hot blob, the storms and the machine's limits.
 */
import type { HonestS3Results } from './honest-s3.ts';
import type { HotBlobResult } from './hot-blob.ts';
import type { HotFunction } from './profile-top.ts';
import { find, renderRow, ROW_HEADER, type Row } from './report-rows.ts';
import { renderSections } from './report-sections.ts';
import { targets } from './report-targets.ts';

export interface BenchResults {
  date: string;
  machine: { arch: string; cpus: number; model: string; node: string };
  seconds: number;
  rows: Row[];
  /** Sections run (BENCH_ONLY); absent in older results, which ran them all. */
  sections?: string[];
  storm?: {
    requests: number;
    processes: number;
    blobBytes: number;
    s3Gets: number;
    allCorrect: boolean;
    timeToLastByteMs: number;
  };
  drain?: {
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
  /** Against an S3 behind a modelled link, beside nginx caching proxies. */
  honest?: HonestS3Results;
  /** Many clients reading one large blob through several data planes. */
  hot?: HotBlobResult;
  /** BENCH_PROFILE=1: the main table's production data plane, self time by function. */
  profile?: { file: string; top: HotFunction[] };
}

export function renderReport(results: BenchResults, plot: string): string {
  const lines: string[] = [];
  lines.push(`# blobcache benchmark — ${results.date.slice(0, 10)}`);
  lines.push('');
  lines.push(
    `Machine: ${results.machine.cpus} × ${results.machine.model} (${results.machine.arch}), Node ${results.machine.node}; ` +
      `load generators (wrk, redis-benchmark, bench/put-load.ts, bench/get-load.ts) on the same machine. GET runs last ${results.seconds} s each.`,
  );
  if (results.sections !== undefined)
    lines.push('', `Sections run: ${results.sections.join(', ')}.`);
  lines.push('', '## Targets', '');
  lines.push("| target | measured | met | this machine's limit |");
  lines.push('|---|---|---|---|');
  for (const row of targets(results))
    lines.push(
      `| ${row.target} | ${row.measured} | ${row.met === undefined ? 'not run' : row.met ? 'yes' : '**no**'} | ${row.limit} |`,
    );
  for (const op of ['GET', 'PUT'] as const) {
    const rows = results.rows.filter((candidate) => candidate.op === op);
    if (rows.length === 0) continue;
    lines.push('', `## ${op}`, '');
    lines.push(
      'CPU per request counts the process that answered (data plane, nginx worker, S3 server, or every Redis server for redis-benchmark); "with backends" adds the Redis servers a data plane read from or wrote to meanwhile.',
      '',
    );
    lines.push(ROW_HEADER);
    for (const row of rows) {
      const nginx = find(results.rows, 'GET', 'nginx', row.size);
      const s3 = find(results.rows, 'GET', 'S3 direct', row.size);
      const vs = (reference: Row | undefined): string =>
        op === 'GET' && reference !== undefined && row.system.startsWith('blobcache')
          ? (row.megabytesPerSecond / reference.megabytesPerSecond).toFixed(2)
          : '';
      lines.push(renderRow(row, [vs(nginx), vs(s3)]));
    }
  }
  lines.push(...renderSections(results));
  lines.push('', `![throughput by blob size](${plot})`, '');
  return lines.join('\n');
}
