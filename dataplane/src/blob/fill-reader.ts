import { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { HELD_DOWNSTREAM } from '../redis/chunks.ts';
import { ChunkMissingError } from '../redis/errors.ts';
import type { RedisFastTier } from '../redis/fast-tier.ts';
import type { FillProgress } from './fill-progress.ts';
import type { BlobStore, ByteRange } from './store.ts';
import { verifiedRead } from './verified-read.ts';

export interface ReadBehindDeps {
  fast: RedisFastTier;
  store: BlobStore;
  metrics: Metrics;
  logger: Logger;
}

/**
 * Streams a blob (or `range` of it) behind a fill under way, in this process or another:
 * each chunk as soon as the fill staged it, from the fill's window in memory when it is
 * there, else from Redis; behind a fill in this process, the bytes of a chunk not staged
 * yet as they pass the fill's verifier. The fill never waits for this reader: a reader
 * that falls behind reads Redis, and pins at most a few chunks (`HELD_DOWNSTREAM`) while
 * its client takes them.
 *
 * The stream's last byte waits until the fill finished (its bytes matched the key), also
 * for a range that ends long before the blob does: a damaged blob is never a complete
 * transfer. If a staged chunk is gone (evicted, or the publish was refused and dropped
 * them), the rest comes from the durable tier, read whole and verified.
 */
export function readBehind(
  deps: ReadBehindDeps,
  progress: FillProgress,
  range?: ByteRange,
): Readable {
  const { chunkBytes } = progress;
  const start = range?.start ?? 0;
  const end = range?.end ?? progress.size - 1;

  async function* bytes(): AsyncGenerator<Buffer> {
    // Attached on the first read: a stream destroyed before it never runs this body (nor
    // its `finally`), and must not keep the fill's window in memory.
    const detach = progress.attach();
    let position = start;
    const pinned: number[] = [];
    /** The final piece goes out only once the fill is known good. */
    const last = async (piece: Buffer): Promise<Buffer> => {
      position += piece.length;
      if (position > end) await progress.settled;
      return piece;
    };
    try {
      while (position <= end) {
        const index = Math.floor(position / chunkBytes);
        if (index >= progress.readableChunks) {
          // Bytes the fill in this process received and Redis may not have yet.
          const offset = position - index * chunkBytes;
          const received = progress.receivedBytes(index, offset);
          if (received === undefined) await progress.waitForBytes(index, offset);
          else yield await last(received.subarray(0, end - position + 1));
          continue;
        }
        const data = progress.take(index);
        if (data !== undefined) {
          pinned.push(index);
          const from = position - index * chunkBytes;
          const to = Math.min(data.length, end - index * chunkBytes + 1);
          yield await last(from === 0 && to === data.length ? data : data.subarray(from, to));
          // The client asked for more: chunks this far behind left our hands.
          while (pinned.length > HELD_DOWNSTREAM) progress.release(pinned.shift()!);
          continue;
        }
        // Not in memory: read from Redis up to the window (or this one chunk).
        const through = Math.min(
          progress.readableChunks - 1,
          index < progress.windowStart ? progress.windowStart - 1 : index,
        );
        const span = { start: position, end: Math.min(end, (through + 1) * chunkBytes - 1) };
        try {
          for await (const piece of deps.fast.read(progress, span) as AsyncIterable<Buffer>)
            yield await last(piece);
        } catch (error) {
          if (!(error instanceof ChunkMissingError)) throw error;
          for await (const piece of continueFromStore(deps, progress, { start: position, end }))
            yield await last(piece);
        }
      }
      // An empty blob (or range) still ends only once the fill is known good.
      if (start > end) await progress.settled;
    } finally {
      for (const index of pinned) progress.release(index);
      detach();
    }
  }
  return Readable.from(bytes(), { objectMode: false, highWaterMark: 0 });
}

/** The rest of the blob from the durable tier: read whole, verified, only `rest` passed on. */
async function* continueFromStore(
  deps: ReadBehindDeps,
  progress: FillProgress,
  rest: ByteRange,
): AsyncGenerator<Buffer> {
  const { key, size } = progress;
  deps.metrics.fills.inc({ result: 'chunk-missing' });
  deps.logger.warn('Found a staged chunk gone; continuing from the durable tier', {
    key,
    offset: rest.start,
  });
  const read = await deps.store.get(key);
  if (read === null) throw new Error(`Blob ${key} is in neither tier any more`);
  yield* verifiedRead(read.stream, { key, size }, rest) as AsyncIterable<Buffer>;
}
