/**
 * The hot blob: many clients read one large blob at once through several data-plane
 * processes. Every chunk of a blob shares one hash tag, so one Redis master serves them
 * all; the figure that matters is how many bytes each master sent.
 *
 * Measured from each master's INFO `total_net_output_bytes` (Redis 7: bytes written to
 * clients, replication excluded; the cluster bus has its own counters): while the clients
 * read, the data planes are the masters' only busy clients (idle planes poll their journal,
 * a few hundred bytes a second), so its delta is what the blob cost the shard. Per-command
 * stats count calls, not bytes, and chunk reads differ in size, so they cannot say it.
 */
import { randomFillSync } from 'node:crypto';
import { md5 } from '../test/harness/blobs.ts';
import { waitForDrain } from '../test/harness/production-helpers.ts';
import type { ProductionStack } from '../test/harness/production.ts';
import { getLoadProcess } from './load.ts';
import { cpuSecondsOf } from './processes.ts';

export interface HotBlobResult {
  blobBytes: number;
  clients: number;
  processes: number;
  correct: number;
  seconds: number;
  megabytesPerSecond: number;
  lastByteMs: number;
  /** Bytes each master wrote to its clients while the clients read. */
  masters: { port: number; bytesServed: number }[];
  /** CPU seconds of the data planes and of every Redis server during the reads. */
  dataPlaneCpuSeconds: number;
  redisCpuSeconds: number;
}

function netOutputBytes(stack: ProductionStack, port: number): number {
  const match = /^total_net_output_bytes:(\d+)/m.exec(stack.redis.info(port, 'stats'));
  if (match?.[1] === undefined) throw new Error(`Redis ${port} reports no total_net_output_bytes`);
  return Number(match[1]);
}

export async function hotBlob(
  stack: ProductionStack,
  options: { blobBytes: number; clients: number; processes: number },
): Promise<HotBlobResult> {
  const planes = await Promise.all(
    Array.from({ length: options.processes }, () =>
      stack.spawn(
        { BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint },
        { compiled: true },
      ),
    ),
  );
  try {
    const blob = randomFillSync(Buffer.allocUnsafe(options.blobBytes));
    const key = md5(blob);
    const stored = await fetch(`${planes[0]!.url}/v1/blobs/${key}`, { method: 'PUT', body: blob });
    if (stored.status !== 201) throw new Error(`Storing the hot blob answered ${stored.status}`);
    // The write-behind upload reads the blob back from Redis: let it finish first.
    await waitForDrain(planes[0]!.url, 600_000);
    const masters = stack.redis.masters();
    const before = new Map(masters.map((port) => [port, netOutputBytes(stack, port)]));
    const planePids = planes.map((plane) => plane.child.pid!);
    const redisPids = stack.redis.nodes.map((node) => node.process.pid!);
    const cpu = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
    const [planeCpu, redisCpu] = [cpu(planePids), cpu(redisPids)];
    const result = await getLoadProcess({
      urls: planes.map((plane) => `${plane.url}/v1/blobs/${key}`),
      requests: options.clients,
      concurrency: options.clients,
      expectedBytes: blob.length,
    });
    return {
      blobBytes: blob.length,
      clients: options.clients,
      processes: planes.length,
      correct: result.correct,
      seconds: result.seconds,
      megabytesPerSecond: result.bytes / result.seconds / 1e6,
      lastByteMs: result.lastByteMs.max,
      masters: masters.map((port) => ({
        port,
        bytesServed: netOutputBytes(stack, port) - before.get(port)!,
      })),
      dataPlaneCpuSeconds: cpu(planePids) - planeCpu,
      redisCpuSeconds: cpu(redisPids) - redisCpu,
    };
  } finally {
    await Promise.all(planes.map((plane) => plane.stop('SIGKILL')));
  }
}
