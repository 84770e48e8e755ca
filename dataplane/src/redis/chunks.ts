import type { Cluster } from 'ioredis';
import { Readable, Writable } from 'node:stream';
import { ChunkMissingError } from './errors.ts';

/**
 * Splits a stream into fixed-size chunks written to Redis with `SET ... PX`, keeping at
 * most `inFlight` writes outstanding (memory: `inFlight + 1` chunks). The writable
 * finishes only once every chunk is acknowledged.
 */
export function chunkWriter(options: {
  redis: Cluster;
  chunkBytes: number;
  keyOf: (index: number) => string;
  ttlMs: number;
  inFlight: number;
}): { writable: Writable; chunkCount: () => number } {
  const { redis, chunkBytes, keyOf, ttlMs, inFlight } = options;
  let buffer = Buffer.allocUnsafe(chunkBytes);
  let filled = 0;
  let index = 0;
  const pending = new Set<Promise<unknown>>();
  let failure: Error | undefined;

  const send = async (data: Buffer): Promise<void> => {
    const write = redis.set(keyOf(index++), data, 'PX', ttlMs).catch((error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
    });
    pending.add(write);
    void write.finally(() => pending.delete(write));
    while (pending.size >= inFlight) await Promise.race(pending);
    if (failure !== undefined) throw failure;
  };

  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      (async () => {
        let offset = 0;
        while (offset < chunk.length) {
          const copied = chunk.copy(buffer, filled, offset);
          filled += copied;
          offset += copied;
          if (filled === chunkBytes) {
            const full = buffer;
            buffer = Buffer.allocUnsafe(chunkBytes);
            filled = 0;
            await send(full);
          }
        }
      })().then(() => callback(), callback);
    },
    final(callback) {
      (async () => {
        if (filled > 0) await send(buffer.subarray(0, filled));
        await Promise.all(pending);
        if (failure !== undefined) throw failure;
      })().then(() => callback(), callback);
    },
  });
  return { writable, chunkCount: () => index };
}

/**
 * Streams bytes `start..end` (inclusive) of a chunked blob, fetching up to `readAhead`
 * chunks ahead. A missing chunk fails the stream with `ChunkMissingError`.
 */
export function chunkReader(options: {
  redis: Cluster;
  chunkBytes: number;
  keyOf: (index: number) => string;
  start: number;
  end: number;
  readAhead: number;
}): Readable {
  const { redis, chunkBytes, keyOf, start, end, readAhead } = options;
  const first = Math.floor(start / chunkBytes);
  const last = Math.floor(end / chunkBytes);
  async function* chunks(): AsyncGenerator<Buffer> {
    const inflight: Promise<Buffer | null>[] = [];
    let next = first;
    const launch = (): void => {
      while (inflight.length < readAhead && next <= last) {
        const read = redis.getBuffer(keyOf(next++));
        // Reads left behind when the consumer stops early must not become unhandled rejections.
        read.catch(() => undefined);
        inflight.push(read);
      }
    };
    for (let index = first; index <= last; index++) {
      launch();
      const data = await inflight.shift()!;
      if (data === null) throw new ChunkMissingError(`Chunk ${index} (${keyOf(index)}) is gone`);
      const chunkStart = index * chunkBytes;
      const from = Math.max(0, start - chunkStart);
      const to = Math.min(data.length, end - chunkStart + 1);
      yield from === 0 && to === data.length ? data : data.subarray(from, to);
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
