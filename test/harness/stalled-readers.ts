import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { residentSet } from './dataplane.ts';
import { eventually } from './eventually.ts';
import { metricSum, metricValue } from './production-helpers.ts';
import { openSocket } from './raw-socket.ts';

const MiB = 1024 * 1024;

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
