/** One measured GET run: wrk against a URL, with the CPU of the processes that served it. */
import { timedGet } from './get-load.ts';
import { wrkGet } from './load.ts';
import { cpuSecondsDuring, ProcessSampler } from './processes.ts';
import type { Row } from './report-rows.ts';

export interface Served {
  system: string;
  size: number;
  url: string;
  connections: number;
  seconds: number;
  /** The process that answers (data plane, nginx worker, S3 server): RSS and CPU sampled. */
  server?: number;
  /** Processes it reads from (Redis servers, S3 server): their CPU is counted beside. */
  backends?: readonly number[];
}

export async function measureGet(served: Served): Promise<Row> {
  const sampler = served.server === undefined ? undefined : new ProcessSampler(served.server);
  sampler?.start();
  const { result, cpuSeconds } = await cpuSecondsDuring(served.backends ?? [], () =>
    wrkGet(served.url, { connections: served.connections, seconds: served.seconds }),
  );
  const sampled = sampler?.stop();
  const row: Row = {
    op: 'GET',
    system: served.system,
    size: served.size,
    connections: served.connections,
    ...result,
    ...(sampled === undefined
      ? {}
      : {
          startRssMiB: sampled.startRssMiB,
          peakRssMiB: sampled.peakRssMiB,
          cpuPercent: sampled.cpuPercent,
          serverCpuSeconds: sampled.cpuSeconds,
        }),
    ...(served.backends === undefined ? {} : { backendCpuSeconds: cpuSeconds }),
  };
  process.stderr.write(
    `[bench] GET ${served.system} ${served.size} B x${served.connections}: ${result.megabytesPerSecond.toFixed(0)} MB/s, ` +
      `${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms\n`,
  );
  return row;
}

/**
 * Untimed reads before a system's timed run of hot GETs (the main table's, and the hits of
 * the modelled-S3 section), so every system is timed serving a hot blob as it does in its
 * steady state. One whole GET first: nginx and S3 then serve from the page cache (a caching
 * proxy from its cache), the embedded plane has checked the file on its first whole read,
 * and the production plane has copied a large blob from Redis into its local tier (a run
 * of a few seconds would otherwise time mostly that copy of a 256 MiB blob; the cold-miss,
 * hot-blob and cold-start sections measure first reads). Then one second of the timed load
 * itself, so the server's hot path is compiled (a fresh Node process runs it interpreted
 * at first).
 */
export async function warmUp(
  served: Pick<Served, 'system' | 'url' | 'size'>,
  connections: number,
): Promise<void> {
  const first = await timedGet(served.url, { expectedBytes: served.size });
  if (!first.correct)
    throw new Error(
      `The first GET from ${served.system} was not a 200 with ${served.size} B (${first.bytes} B)`,
    );
  process.stderr.write(
    `[bench] first GET ${served.system} ${served.size} B: ${first.lastByteMs.toFixed(0)} ms\n`,
  );
  await wrkGet(served.url, { connections, seconds: 1 });
}
