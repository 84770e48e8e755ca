import { expect } from 'chai';
import type { Cluster } from 'ioredis';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChunkMissingError } from '../../../dataplane/src/redis/errors.ts';
import { PIECE_BYTES, ReadAheadBudget, chunkReader } from '../../../dataplane/src/redis/chunks.ts';

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
    await new Promise((resolve) => setTimeout(resolve, 10));
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
