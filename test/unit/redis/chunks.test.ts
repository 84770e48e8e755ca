import { expect } from 'chai';
import type { Cluster } from 'ioredis';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkMissingError } from '../../../dataplane/src/redis/errors.ts';
import {
  PIECE_BYTES,
  ReadAheadBudget,
  chunkReader,
  chunkWriter,
} from '../../../dataplane/src/redis/chunks.ts';

const CHUNK = 256 * 1024;

/** Just the two reads chunkReader makes, over an in-memory map (pure logic under test). */
function fakeRedis(chunks: Map<string, Buffer>, calls: string[]): Cluster {
  return {
    getBuffer: (key: string) => {
      calls.push(`GET ${key}`);
      return Promise.resolve(chunks.get(key) ?? null);
    },
    getrangeBuffer: (key: string, start: number, end: number) => {
      calls.push(`GETRANGE ${key} ${start} ${end}`);
      return Promise.resolve((chunks.get(key) ?? Buffer.alloc(0)).subarray(start, end + 1));
    },
  } as unknown as Cluster;
}

function blobChunks(size: number): { blob: Buffer; chunks: Map<string, Buffer> } {
  const blob = Buffer.alloc(size);
  for (let i = 0; i < size; i++) blob[i] = (i * 31) & 0xff;
  const chunks = new Map<string, Buffer>();
  for (let i = 0; i * CHUNK < size; i++)
    chunks.set(`c${i}`, blob.subarray(i * CHUNK, (i + 1) * CHUNK));
  return { blob, chunks };
}

/** A reader of the whole of `blob`'s chunks from `start`. */
function readerOf(
  chunks: Map<string, Buffer>,
  size: number,
  options: { calls?: string[]; budget: ReadAheadBudget; readAhead: number; start?: number },
) {
  return chunkReader({
    redis: fakeRedis(chunks, options.calls ?? []),
    chunkBytes: CHUNK,
    keyOf: (i) => `c${i}`,
    start: options.start ?? 0,
    end: size - 1,
    readAhead: options.readAhead,
    budget: options.budget,
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('chunkReader', () => {
  it('reads whole chunks ahead while the budget has room, and gives it all back', async () => {
    const { blob, chunks } = blobChunks(5 * CHUNK + 100);
    const calls: string[] = [];
    const budget = new ReadAheadBudget(64 * CHUNK);
    const stream = readerOf(chunks, blob.length, { calls, budget, readAhead: 4, start: 10 });
    expect((await readAll(stream)).equals(blob.subarray(10))).to.be.true;
    expect(calls.every((call) => call.startsWith('GET '))).to.be.true;
    expect(budget.inUse()).to.equal(0);
  });

  it('reads in pieces, holding nothing of the budget, when the budget is spent', async () => {
    const { blob, chunks } = blobChunks(2 * CHUNK);
    const calls: string[] = [];
    const budget = new ReadAheadBudget(CHUNK);
    expect(budget.tryTake(CHUNK)).to.be.true;
    const stream = readerOf(chunks, blob.length, { calls, budget, readAhead: 4 });
    expect((await readAll(stream)).equals(blob)).to.be.true;
    expect(calls).to.have.length((2 * CHUNK) / PIECE_BYTES);
    expect(calls.every((call) => call.startsWith('GETRANGE '))).to.be.true;
    expect(budget.inUse()).to.equal(CHUNK);
  });

  it('fetches nothing before it is asked, and gives the budget back when destroyed', async () => {
    const { blob, chunks } = blobChunks(8 * CHUNK);
    const calls: string[] = [];
    const budget = new ReadAheadBudget(64 * CHUNK);
    const stream = readerOf(chunks, blob.length, { calls, budget, readAhead: 3 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(calls).to.deep.equal([]);
    await new Promise<void>((resolve) => {
      stream.once('data', () => {
        stream.pause();
        resolve();
      });
    });
    // Read ahead (3) plus the chunks handed on that may still sit downstream (3).
    expect(budget.inUse()).to.be.at.most((3 + 3) * CHUNK);
    stream.destroy();
    // Emitted once the reader's generator has ended, which gives the budget back.
    await once(stream, 'close');
    expect(budget.inUse()).to.equal(0);
  });

  it('fails with ChunkMissingError when a chunk is gone, whole or in pieces', async () => {
    for (const room of [64 * CHUNK, 0]) {
      const { blob, chunks } = blobChunks(3 * CHUNK);
      chunks.delete('c1');
      const budget = new ReadAheadBudget(Math.max(room, 1));
      const stream = readerOf(chunks, blob.length, { budget, readAhead: 2 });
      const error = await readAll(stream).catch((e: unknown) => e);
      expect(error, `budget ${room}`).to.be.instanceOf(ChunkMissingError);
      expect(budget.inUse()).to.equal(0);
    }
  });
});

describe('chunkWriter', () => {
  /**
   * Writes `blob` in `piece`-byte writes. Keeps the very buffers each SET and each report of
   * received bytes was given (not copies), so checking them after the whole write also
   * shows that none was written to again after it was handed on.
   */
  async function write(blob: Buffer, piece: number, expectedBytes?: number) {
    const stored: { key: string; data: Buffer }[] = [];
    const received: { index: number; data: Buffer; length: number }[] = [];
    const redis = {
      set: (key: string, data: Buffer) => {
        stored.push({ key, data });
        return Promise.resolve('OK');
      },
    } as unknown as Cluster;
    const { writable, chunkCount } = chunkWriter({
      redis,
      chunkBytes: CHUNK,
      keyOf: (i) => `c${i}`,
      ttlMs: 1000,
      inFlight: 2,
      ...(expectedBytes === undefined ? {} : { expectedBytes }),
      onReceived: (index, data, length) => received.push({ index, data, length }),
    });
    const pieces = function* () {
      for (let offset = 0; offset < blob.length; offset += piece)
        yield blob.subarray(offset, Math.min(blob.length, offset + piece));
    };
    await pipeline(Readable.from(pieces(), { objectMode: false }), writable);
    return { stored, received, count: chunkCount() };
  }

  /**
   * The blob's bytes split into whole chunks, the last one short; and every report of
   * received bytes, in whichever buffer it came, still holds the blob's bytes.
   */
  function expectChunks(written: Awaited<ReturnType<typeof write>>, blob: Buffer): void {
    const { stored, received } = written;
    expect(stored.map((s) => s.key)).to.deep.equal(
      Array.from({ length: Math.ceil(blob.length / CHUNK) }, (_, i) => `c${i}`),
    );
    stored.forEach((s, i) =>
      expect(s.data.equals(blob.subarray(i * CHUNK, (i + 1) * CHUNK)), s.key).to.equal(true),
    );
    expect(received.length).to.be.above(0);
    for (const { index, data, length } of received) {
      const expected = blob.subarray(index * CHUNK, index * CHUNK + length);
      expect(data.subarray(0, length).equals(expected), `chunk ${index}, ${length} B`).to.equal(
        true,
      );
    }
  }

  const bufferBytes = (written: Awaited<ReturnType<typeof write>>): number[] =>
    written.stored.map((s) => s.data.buffer.byteLength);

  it('sizes the buffer of each chunk to what the declared length leaves of it', async () => {
    const { blob } = blobChunks(2 * CHUNK + 10_000);
    for (const piece of [64 * 1024, 7_777]) {
      const written = await write(blob, piece, blob.length);
      expect(written.count).to.equal(3);
      expectChunks(written, blob);
      expect(bufferBytes(written)).to.deep.equal([CHUNK, CHUNK, 10_000]);
    }
    // Small enough for Node's shared pool: the chunk still has a buffer of its own.
    for (const size of [10_000, 100]) {
      const small = blobChunks(size).blob;
      const written = await write(small, 4096, small.length);
      expectChunks(written, small);
      expect(bufferBytes(written)).to.deep.equal([size]);
    }
  });

  it('still stores whole chunks when the stream is longer or shorter than declared', async () => {
    const { blob } = blobChunks(CHUNK + 5_000);
    for (const declared of [10_000, 1, 0, 3 * CHUNK]) {
      const written = await write(blob, 3_000, declared);
      expectChunks(written, blob);
      // The first chunk's buffer grew (unless declared whole): its bytes were reported
      // again from the grown buffer, up to the whole chunk.
      const reportsOfFirst = written.received.filter((report) => report.index === 0);
      expect(reportsOfFirst.at(-1)!.length, `declared ${declared}`).to.equal(CHUNK);
      const buffers = new Set(reportsOfFirst.map((report) => report.data));
      expect(buffers.size, `declared ${declared}`).to.equal(declared >= CHUNK ? 1 : 2);
    }
  });

  it('takes whole chunk buffers when no length is declared', async () => {
    const { blob } = blobChunks(CHUNK + 5_000);
    const written = await write(blob, 64 * 1024);
    expectChunks(written, blob);
    expect(bufferBytes(written)).to.deep.equal([CHUNK, CHUNK]);
  });
});
