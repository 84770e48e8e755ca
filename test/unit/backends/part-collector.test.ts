import { expect } from 'chai';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PartCollector } from '../../../dataplane/src/backends/part-collector.ts';

/** Feeds `total` bytes (byte i = i % 251) in `piece`-sized writes; returns parts and rest. */
async function collect(
  collector: PartCollector,
  total: number,
  piece: number,
): Promise<{ parts: Buffer[]; rest: Buffer }> {
  const data = Buffer.from(Array.from({ length: total }, (_, i) => i % 251));
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < total; offset += piece)
    pieces.push(data.subarray(offset, offset + piece));
  const parts: Buffer[] = [];
  await pipeline(
    Readable.from(pieces, { objectMode: false }),
    collector.writable((part) => {
      parts.push(Buffer.from(part));
      return Promise.resolve();
    }),
  );
  const rest = collector.rest();
  expect(Buffer.concat([...parts, rest]).equals(data)).to.equal(true);
  return { parts, rest };
}

describe('PartCollector', () => {
  it('hands over full parts and keeps the short tail', async () => {
    const { parts, rest } = await collect(new PartCollector(100), 350, 33);
    expect(parts.map((part) => part.length)).to.deep.equal([100, 100, 100]);
    expect(rest.length).to.equal(50);
  });

  it('keeps a blob of exactly the expected size as the tail, not as a full part', async () => {
    const { parts, rest } = await collect(new PartCollector(100, 60), 60, 7);
    expect(parts).to.have.length(0);
    expect(rest.length).to.equal(60);
  });

  it('still hands over full parts when more bytes come than expected', async () => {
    const { parts, rest } = await collect(new PartCollector(100, 60), 230, 40);
    expect(parts.map((part) => part.length)).to.deep.equal([100, 100]);
    expect(rest.length).to.equal(30);
  });

  it('sizes the last part of a known size to what is left', async () => {
    const { parts, rest } = await collect(new PartCollector(100, 250), 250, 64);
    expect(parts.map((part) => part.length)).to.deep.equal([100, 100]);
    expect(rest.length).to.equal(50);
  });

  it('has an empty tail for an empty blob', async () => {
    const { parts, rest } = await collect(new PartCollector(100, 0), 0, 1);
    expect(parts).to.have.length(0);
    expect(rest.length).to.equal(0);
  });
});
