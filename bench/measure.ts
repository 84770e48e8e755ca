/** One measured GET run: wrk against a URL, with the CPU of the processes that served it. */
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
