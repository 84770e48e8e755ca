import { expect } from 'chai';
import { PassThrough, Readable } from 'node:stream';
import { RangeWindow, verifiedRead } from '../../../dataplane/src/blob/verified-read.ts';
import { md5 } from '../../harness/blobs.ts';

const blob = Buffer.from(Array.from({ length: 50 }, (_, i) => i));

/** `blob` in pieces of `size` bytes. */
const piecesOf = (data: Buffer, size: number): Buffer[] =>
  Array.from({ length: Math.ceil(data.length / size) }, (_, i) =>
    data.subarray(i * size, (i + 1) * size),
  );

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe('RangeWindow and verifiedRead', () => {
  it('passes on exactly bytes start..end, whatever the pieces', async () => {
    for (const size of [1, 3, 7, 50]) {
      for (const [start, end] of [
        [0, 49],
        [0, 0],
        [49, 49],
        [10, 20],
        [6, 7],
      ] as const) {
        const got = await collect(
          Readable.from(piecesOf(blob, size)).pipe(new RangeWindow({ start, end })),
        );
        expect(got.equals(blob.subarray(start, end + 1)), `${size}: ${start}-${end}`).to.be.true;
      }
    }
  });

  it('holds its last piece back until its source ends', async () => {
    const source = new PassThrough();
    const window = new RangeWindow({ start: 0, end: 9 });
    const seen: Buffer[] = [];
    window.on('data', (part: Buffer) => seen.push(part));
    source.pipe(window);
    source.write(blob.subarray(0, 5));
    source.write(blob.subarray(5, 10));
    source.write(blob.subarray(10, 50));
    await new Promise((resolve) => setImmediate(resolve));
    // The whole range went by, but its last piece waits for the end of the blob.
    expect(Buffer.concat(seen).length).to.equal(5);
    source.end();
    await new Promise((resolve) => window.once('end', resolve));
    expect(Buffer.concat(seen).equals(blob.subarray(0, 10))).to.be.true;
  });

  it('never delivers all of a range cut from bytes that fail verification', async () => {
    const damaged = Buffer.from(blob);
    damaged[45] = 0xff;
    const parts: Buffer[] = [];
    let failure: unknown;
    try {
      const stream = verifiedRead(
        Readable.from(piecesOf(damaged, 4)),
        { key: md5(blob), size: 50 },
        {
          start: 0,
          end: 9,
        },
      );
      for await (const part of stream) parts.push(part as Buffer);
    } catch (error) {
      failure = error;
    }
    expect(failure).to.be.instanceOf(Error);
    expect(Buffer.concat(parts).length).to.be.below(10);
    // The same bytes undamaged: the whole range.
    const good = await collect(
      verifiedRead(
        Readable.from(piecesOf(blob, 4)),
        { key: md5(blob), size: 50 },
        { start: 0, end: 9 },
      ),
    );
    expect(good.equals(blob.subarray(0, 10))).to.be.true;
  });
});
