/** A result row of the report's tables and how one is found and rendered. */
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
  /** CPU seconds of the process that answered (data plane, nginx worker, S3 server). */
  serverCpuSeconds?: number;
  /** CPU seconds of what it read from meanwhile (Redis servers, S3 server). */
  backendCpuSeconds?: number;
}

export function sizeLabel(size: number): string {
  if (size >= 1024 * 1024) return `${size / 1024 / 1024} MiB`;
  return `${size / 1024} KiB`;
}

/** A result row; by default the loaded run (more than one connection), or exactly `connections`. */
export function find(
  rows: readonly Row[],
  op: string,
  system: string,
  size: number,
  connections?: number,
): Row | undefined {
  return rows.find(
    (row) =>
      row.op === op &&
      row.system.startsWith(system) &&
      row.size === size &&
      (connections === undefined ? row.connections > 1 : row.connections === connections),
  );
}

export const fixed = (value: number | undefined, digits = 1): string =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);

/** Requests and MB per CPU-second of the answering process, and of it with its backends. */
function perCpu(row: Row): [string, string, string] {
  const server = row.serverCpuSeconds;
  if (server === undefined || server <= 0) return ['–', '–', '–'];
  const megabytes = row.megabytesPerSecond * row.seconds;
  const all = server + (row.backendCpuSeconds ?? 0);
  return [
    fixed(row.requests / server, 0),
    fixed(megabytes / server, 0),
    row.backendCpuSeconds === undefined ? '' : fixed(megabytes / all, 0),
  ];
}

export const ROW_HEADER =
  '| size | system | conns | req/s | MB/s | p50 ms | p99 ms | errors | RSS at start MiB | peak RSS MiB | CPU % | req per CPU-s | MB per CPU-s | MB per CPU-s with backends | ÷ nginx | ÷ S3 |\n' +
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|';

export function renderRow(row: Row, vs: [string, string] = ['', '']): string {
  const [requests, megabytes, withBackends] = perCpu(row);
  return (
    `| ${sizeLabel(row.size)} | ${row.system} | ${row.connections} | ${fixed(row.requestsPerSecond, 0)} | ${fixed(row.megabytesPerSecond, 0)} | ` +
    `${fixed(row.p50Ms, 2)} | ${fixed(row.p99Ms, 2)} | ${row.errors} | ${fixed(row.startRssMiB)} | ${fixed(row.peakRssMiB)} | ${fixed(row.cpuPercent, 0)} | ` +
    `${requests} | ${megabytes} | ${withBackends} | ${vs[0]} | ${vs[1]} |`
  );
}
