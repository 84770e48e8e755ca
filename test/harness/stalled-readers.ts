import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { residentSet } from './dataplane.ts';
import { metricValue } from './production-helpers.ts';
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
