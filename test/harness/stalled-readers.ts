import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, residentSet, type SpawnedDataPlane } from './dataplane.ts';
import { eventually } from './eventually.ts';
import { metricSum, metricValue } from './production-helpers.ts';
import { openSocket } from './raw-socket.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * What one connection's stream may hold outside every budget, from the design
 * (docs/decisions/0018): eight pieces of 64 KiB (the default highWaterMark and the size of
 * a disk read or a Redis piece) on the longest path, a whole read from disk with a fill:
 * the file stream one, the verifier three (one waiting to be written, one to be read, one
 * held back), the tee two, the response and its socket two.
 */
export const STREAM_WINDOW_BYTES = 8 * 64 * KiB;

/**
 * What RSS may hold beyond the live bytes: buffers already garbage that V8 has not
 * collected yet, and freed buffers whose pages the allocator keeps for reuse rather than
 * giving back. It depends on how much went through, not on how many readers hold what.
 * Measured up to 65 MiB in these tests; this is an allowance, not a bound the design sets.
 */
export const ALLOCATOR_SLACK_BYTES = 128 * MiB;

/**
 * Environment for a spawned data plane whose live memory a test measures: preloads
 * gc-probe.ts (see `liveMemory`).
 */
export const MEMORY_PROBE_ENV = {
  NODE_OPTIONS: `--expose-gc --import ${join(REPO_ROOT, 'test/harness/gc-probe.ts')}`,
};

export interface MemoryUse {
  /** RSS as it was, before the collection. */
  rssBefore: number;
  /** After a full collection: RSS, and bytes held in ArrayBuffers (every Buffer's bytes). */
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
}

/**
 * Memory of a plane spawned with `MEMORY_PROBE_ENV`: RSS, then what is live after a full
 * collection, so garbage an idle process has not collected yet is not taken for bytes
 * somebody holds.
 */
export async function memoryUse(plane: SpawnedDataPlane): Promise<MemoryUse> {
  const rssBefore = await rss(plane.child.pid!);
  const seen = plane.logs.length;
  plane.child.kill('SIGUSR2');
  const report = await eventually(
    'the memory probe to report',
    () =>
      Promise.resolve(
        plane.logs
          .slice(seen)
          .find((line) => line.message === 'Measured memory after a full collection'),
      ),
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  const { rss: after, arrayBuffers, heapUsed } = report as unknown as NodeJS.MemoryUsage;
  return { rssBefore, rss: after, arrayBuffers, heapUsed };
}

/** One line comparing two `memoryUse` readings. */
export function describeGrowth(before: MemoryUse, after: MemoryUse): string {
  return (
    `RSS ${mib(before.rssBefore)} -> ${mib(after.rssBefore)}, ` +
    `after a full collection RSS ${mib(before.rss)} -> ${mib(after.rss)} (+${mib(after.rss - before.rss)}), ` +
    `ArrayBuffers ${mib(before.arrayBuffers)} -> ${mib(after.arrayBuffers)} (+${mib(after.arrayBuffers - before.arrayBuffers)})`
  );
}

/** A GET whose client reads the first bytes, then never reads again (socket paused). */
export async function stalledGet(url: string, key: string): Promise<Socket> {
  const socket = await openSocket(url);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    socket.once('data', () => {
      socket.pause();
      resolve();
    });
    socket.write(`GET /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
  return socket;
}

/**
 * Waits until the server stopped sending (every reader's buffers are full): the bytes-sent
 * counter holds still for a second. Returns when that began.
 */
export async function waitUntilStalled(url: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let stillSince = Date.now();
  for (;;) {
    const sent = await metricValue(url, 'blobcache_bytes_sent_total');
    if (sent !== last) {
      last = sent;
      stillSince = Date.now();
    } else if (Date.now() - stillSince >= 1000) {
      return stillSince;
    }
    if (Date.now() > deadline) throw new Error('The server never stopped sending');
    await sleep(100);
  }
}

/** Open connections the server counts, less the one asking. */
export async function openConnections(url: string): Promise<number> {
  return (await metricValue(url, 'blobcache_open_connections')) - 1;
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** Current RSS of a process, in bytes. */
export async function rss(pid: number): Promise<number> {
  return (await residentSet(pid)).currentBytes;
}

/** Connections the server cut for being idle, so far. */
export function idleCuts(url: string): Promise<number> {
  return metricSum(url, 'blobcache_client_errors_total', 'reason="idle"');
}

/**
 * Waits until the server cut `count` more idle connections than `before`; returns the
 * milliseconds from `since` until then.
 */
export async function waitForIdleCuts(
  url: string,
  options: { before: number; count: number; since: number; idleMs: number },
): Promise<number> {
  await eventually(
    'the stalled readers to be cut',
    async () => (await idleCuts(url)) >= options.before + options.count,
    { timeoutMs: 4 * options.idleMs, intervalMs: 50 },
  );
  return Date.now() - options.since;
}
