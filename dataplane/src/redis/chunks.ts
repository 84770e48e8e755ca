import type { Cluster } from 'ioredis';
import { Readable, Writable } from 'node:stream';
import { ChunkMissingError } from './errors.ts';

/**
 * Splits a stream into fixed-size chunks written to Redis with `SET ... PX`, keeping at
 * most `inFlight` writes outstanding (memory: `inFlight + 1` chunks). The writable
 * finishes only once every chunk is acknowledged. `onStored` learns of each chunk Redis
 * acknowledged, in index order (a fill hands them to readers streaming behind it), and
 * `onReceived` of the bytes of the chunk being filled, as they come.
 *
 * With `expectedBytes` (the declared length), each chunk's buffer is sized to what is
 * left of it: a 4 KiB upload takes a 4 KiB buffer, not a whole chunk's 1 MiB (measured on
 * 4 KiB uploads: 1.9 to 2.1 ms of CPU each until the answer, against 2.4 to 2.8 ms with a
 * whole chunk's buffer). A stream longer than declared still gets whole chunks: its buffer
 * grows when full.
 */
export function chunkWriter(options: {
  redis: Cluster;
  chunkBytes: number;
  keyOf: (index: number) => string;
  ttlMs: number;
  inFlight: number;
  /** Bytes the stream is declared to hold, when known. */
  expectedBytes?: number;
  onStored?: (index: number, data: Buffer) => void;
  /**
   * Chunk `index` holds `length` bytes so far, in `data` (which is never reused; a chunk
   * whose buffer grew is reported again in the new one, with the same bytes before).
   */
  onReceived?: (index: number, data: Buffer, length: number) => void;
}): { writable: Writable; chunkCount: () => number } {
  const { redis, chunkBytes, keyOf, ttlMs, inFlight, expectedBytes, onStored, onReceived } =
    options;
  /**
   * The buffer for chunk `at`: a whole chunk, or what the declared length leaves of it. Its
   * own memory, never a slice of Node's shared pool: readers of a fill may keep the chunk
   * (the hot tier does), and a slice would keep the whole pool slab alive with it.
   */
  const bufferFor = (at: number): Buffer =>
    Buffer.allocUnsafeSlow(
      expectedBytes === undefined
        ? chunkBytes
        : Math.min(chunkBytes, Math.max(1, expectedBytes - at * chunkBytes)),
    );
  let buffer = bufferFor(0);
  let filled = 0;
  let index = 0;
  const pending = new Set<Promise<unknown>>();
  let failure: Error | undefined;
  /** Acknowledged chunks not yet reported because an earlier one is still in flight. */
  const acknowledged = new Map<number, Buffer>();
  let reported = 0;
  const report = (stored: number, data: Buffer): void => {
    if (onStored === undefined) return;
    acknowledged.set(stored, data);
    for (let next = acknowledged.get(reported); next !== undefined;) {
      acknowledged.delete(reported);
      onStored(reported++, next);
      next = acknowledged.get(reported);
    }
  };

  const send = async (data: Buffer): Promise<void> => {
    const stored = index++;
    const write = redis.set(keyOf(stored), data, 'PX', ttlMs).then(
      () => report(stored, data),
      (error: unknown) => {
        failure ??= error instanceof Error ? error : new Error(String(error));
      },
    );
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
          if (filled === buffer.length) {
            // More than declared: this chunk takes a whole chunk's buffer after all.
            const grown = Buffer.allocUnsafeSlow(chunkBytes);
            buffer.copy(grown, 0, 0, filled);
            buffer = grown;
          }
          const copied = chunk.copy(buffer, filled, offset);
          filled += copied;
          offset += copied;
          onReceived?.(index, buffer, filled);
          if (filled === chunkBytes) {
            const full = buffer;
            buffer = bufferFor(index + 1);
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
 * Bytes of whole chunks that readers hold ahead of their clients, shared by every read in
 * the process (docs/decisions/0018). A stream takes a chunk's bytes before fetching it and
 * gives them back once its consumer asked for more (the chunk left for the socket); with
 * the budget spent, streams fetch no chunk ahead and read the one they need in pieces.
 */
export class ReadAheadBudget {
  private used = 0;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Takes `bytes` if they fit. */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }

  /** Bytes taken now (for metrics). */
  inUse(): number {
    return this.used;
  }
}

/** The process's budget; main.ts sizes it from the configuration. */
let sharedBudget = new ReadAheadBudget(64 * 1024 * 1024);

export function setReadAheadBudget(maxBytes: number): ReadAheadBudget {
  sharedBudget = new ReadAheadBudget(maxBytes);
  return sharedBudget;
}

/** The process's budget, shared by chunk readers and the chunks fills keep for readers. */
export function readAheadBudget(): ReadAheadBudget {
  return sharedBudget;
}

/** Under pressure a chunk is read (GETRANGE) and handed on in pieces of this size. */
export const PIECE_BYTES = 64 * 1024;

/**
 * Chunks handed on that still count against the budget: one in this stream's own buffer
 * (pushed when its reader asked), one in the stream that wraps it (the tiers do, to fall
 * back to S3) and one in the socket's buffer.
 */
export const HELD_DOWNSTREAM = 3;

interface Fetch {
  index: number;
  data: Promise<Buffer | null>;
  /** Budget bytes this fetch holds. */
  taken: number;
}

/**
 * Streams bytes `start..end` (inclusive) of a chunked blob. A missing chunk fails the
 * stream with `ChunkMissingError`.
 *
 * Memory per stream is bounded whatever its client does: chunks are fetched only when the
 * consumer asks (highWaterMark 0), at most `readAhead` at once and only while the shared
 * budget has room, and count until they are `HELD_DOWNSTREAM` chunks behind; without room
 * the needed chunk is read in 64 KiB pieces. A reader that stops reading therefore holds
 * a few pieces plus what the budget granted it.
 */
export function chunkReader(options: {
  redis: Cluster;
  chunkBytes: number;
  keyOf: (index: number) => string;
  start: number;
  end: number;
  readAhead: number;
  /** @default the process's shared budget */
  budget?: ReadAheadBudget;
}): Readable {
  const { redis, chunkBytes, keyOf, start, end, readAhead } = options;
  const budget = options.budget ?? sharedBudget;
  const first = Math.floor(start / chunkBytes);
  const last = Math.floor(end / chunkBytes);
  /** The part of chunk `index` inside the range, as offsets within the chunk. */
  const within = (index: number): { from: number; to: number } => ({
    from: Math.max(0, start - index * chunkBytes),
    to: Math.min(chunkBytes - 1, end - index * chunkBytes),
  });

  async function* chunks(): AsyncGenerator<Buffer> {
    const ahead: Fetch[] = [];
    /** Budget still held for chunks already handed on, oldest first. */
    const handedOn: number[] = [];
    let next = first;
    const launch = (): void => {
      while (ahead.length < readAhead && next <= last && budget.tryTake(chunkBytes)) {
        const data = redis.getBuffer(keyOf(next));
        // Reads left behind when the consumer stops early must not become unhandled rejections.
        data.catch(() => undefined);
        ahead.push({ index: next++, data, taken: chunkBytes });
      }
    };
    try {
      for (let index = first; index <= last; index++) {
        launch();
        const fetched = ahead[0]?.index === index ? ahead.shift() : undefined;
        if (fetched === undefined) {
          // No room to hold the chunk whole: read it in pieces (only `next` moves on).
          next = Math.max(next, index + 1);
          yield* pieces(index);
          continue;
        }
        handedOn.push(fetched.taken);
        const data = await fetched.data;
        if (data === null) throw new ChunkMissingError(`Chunk ${index} (${keyOf(index)}) is gone`);
        const { from, to } = within(index);
        yield from === 0 && to === data.length - 1 ? data : data.subarray(from, to + 1);
        // The consumer asked for more. The chunk may still sit in a buffer downstream (the
        // stream that wraps this one, the socket's): it counts until it is that far behind.
        while (handedOn.length > HELD_DOWNSTREAM) budget.give(handedOn.shift()!);
      }
    } finally {
      for (const taken of handedOn) budget.give(taken);
      for (const fetch of ahead) budget.give(fetch.taken);
    }
  }

  async function* pieces(index: number): AsyncGenerator<Buffer> {
    const { from, to } = within(index);
    for (let offset = from; offset <= to; offset += PIECE_BYTES) {
      const pieceEnd = Math.min(to, offset + PIECE_BYTES - 1);
      const piece = await redis.getrangeBuffer(keyOf(index), offset, pieceEnd);
      if (piece.length !== pieceEnd - offset + 1) {
        throw new ChunkMissingError(`Chunk ${index} (${keyOf(index)}) is gone or short`);
      }
      yield piece;
    }
  }

  return Readable.from(chunks(), { objectMode: false, highWaterMark: 0 });
}
