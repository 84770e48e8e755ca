import { expect } from 'chai';
import type { Cluster } from 'ioredis';
import { chunkReader } from '../../../dataplane/src/redis/chunks.ts';
import { ChunkMissingError } from '../../../dataplane/src/redis/errors.ts';

/**
 * The chunk reader's range arithmetic, against chunks held in a Map: a stand-in for Redis
 * that answers GET (and GETRANGE) by key, the reader's only commands, so every (start, end)
 * pair can be checked exhaustively.
 */
function chunksOf(blob: Buffer, chunkBytes: number): Map<string, Buffer> {
  const chunks = new Map<string, Buffer>();
  for (let index = 0; index * chunkBytes < blob.length; index++)
    chunks.set(`c:${index}`, blob.subarray(index * chunkBytes, (index + 1) * chunkBytes));
  return chunks;
}

function storeOf(
  chunks: Map<string, Buffer>,
  observe: { inFlight: number; most: number },
): Cluster {
  const get = async (key: string): Promise<Buffer | null> => {
    observe.inFlight += 1;
    observe.most = Math.max(observe.most, observe.inFlight);
    await Promise.resolve();
    observe.inFlight -= 1;
    return chunks.get(key) ?? null;
  };
  return {
    getBuffer: get,
    // A part of a chunk (GETRANGE, inclusive end), for readers that fetch chunks in pieces.
    getrangeBuffer: async (key: string, from: number, to: number) =>
      (await get(key))?.subarray(from, to + 1) ?? Buffer.alloc(0),
  } as unknown as Cluster;
}

async function read(
  chunks: Map<string, Buffer>,
  options: { chunkBytes: number; start: number; end: number; readAhead?: number },
  observe = { inFlight: 0, most: 0 },
): Promise<Buffer> {
  const parts: Buffer[] = [];
  const stream = chunkReader({
    redis: storeOf(chunks, observe),
    chunkBytes: options.chunkBytes,
    keyOf: (index) => `c:${index}`,
    start: options.start,
    end: options.end,
    readAhead: options.readAhead ?? 2,
  });
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe('chunkReader range arithmetic', () => {
  const blob = Buffer.from(Array.from({ length: 23 }, (_, i) => i));

  for (const chunkBytes of [1, 4, 5, 23, 64]) {
    it(`returns exactly bytes start..end of a 23-byte blob in ${chunkBytes}-byte chunks, for every range`, async () => {
      const chunks = chunksOf(blob, chunkBytes);
      for (let start = 0; start < blob.length; start++) {
        for (let end = start; end < blob.length; end++) {
          const got = await read(chunks, { chunkBytes, start, end });
          expect(got.equals(blob.subarray(start, end + 1)), `bytes=${start}-${end}`).to.be.true;
        }
      }
    });
  }

  it('reads only the chunks the range touches, at most readAhead at once', async () => {
    const chunks = chunksOf(Buffer.alloc(100), 10);
    const asked: string[] = [];
    const observe = { inFlight: 0, most: 0 };
    const store = storeOf(chunks, observe);
    const spy = {
      getBuffer: (key: string) => {
        asked.push(key);
        return store.getBuffer(key);
      },
    } as unknown as Cluster;
    const stream = chunkReader({
      redis: spy,
      chunkBytes: 10,
      keyOf: (index) => `c:${index}`,
      start: 25,
      end: 74,
      readAhead: 3,
    });
    let bytes = 0;
    for await (const part of stream) bytes += (part as Buffer).length;
    expect(bytes).to.equal(50);
    expect(asked).to.deep.equal(['c:2', 'c:3', 'c:4', 'c:5', 'c:6', 'c:7']);
    expect(observe.most).to.be.at.most(3);
  });

  it('fails with ChunkMissingError when a chunk in the range is gone', async () => {
    const chunks = chunksOf(blob, 5);
    chunks.delete('c:3');
    let failure: unknown;
    await read(chunks, { chunkBytes: 5, start: 0, end: 22 }).catch((error: unknown) => {
      failure = error;
    });
    expect(failure).to.be.instanceOf(ChunkMissingError);
    // A range that does not touch the missing chunk reads fine.
    expect((await read(chunks, { chunkBytes: 5, start: 0, end: 14 })).equals(blob.subarray(0, 15)))
      .to.be.true;
  });
});
