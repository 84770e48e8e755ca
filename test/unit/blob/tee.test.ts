import { expect } from 'chai';
import { PassThrough, Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Tee } from '../../../dataplane/src/blob/tee.ts';

const pieces = (count: number, size = 1024): Buffer[] =>
  Array.from({ length: count }, (_, i) => Buffer.alloc(size, i));

/** A sink that collects what the side stream carries and whether it ended. */
function collectingSink(): {
  sink: (source: Readable) => Promise<Buffer>;
  ended: () => boolean;
} {
  let ended = false;
  return {
    sink: async (source) => {
      const chunks: Buffer[] = [];
      for await (const chunk of source) chunks.push(chunk as Buffer);
      ended = true;
      return Buffer.concat(chunks);
    },
    ended: () => ended,
  };
}

/** A full collection, without starting node with --expose-gc. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function drain(source: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('Tee', () => {
  it('passes the bytes on unchanged and copies them to the side, which ends only on commit', async () => {
    const { sink, ended } = collectingSink();
    const tee = new Tee(sink);
    const data = pieces(5);
    const out = await drain(Readable.from(data).pipe(tee.transform));
    expect(out.equals(Buffer.concat(data))).to.be.true;
    await nextTurn();
    expect(ended(), 'the side ended before commit').to.be.false;
    const copy = await tee.commit();
    expect(Buffer.isBuffer(copy) && copy.equals(Buffer.concat(data))).to.be.true;
  });

  it("with commitOnEnd, holds the main stream's end until the side has settled", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const order: string[] = [];
    const tee = new Tee(
      async (source) => {
        source.resume();
        await finished(source);
        await released;
        order.push('side settled');
      },
      { commitOnEnd: true },
    );
    const reading = drain(Readable.from(pieces(3)).pipe(tee.transform)).then(() =>
      order.push('main ended'),
    );
    await nextTurn();
    await nextTurn();
    expect(order).to.deep.equal([]);
    release();
    await reading;
    expect(order).to.deep.equal(['side settled', 'main ended']);
  });

  it('lets a slow side hold the main stream back, so memory stays bounded', async () => {
    const side = new PassThrough({ highWaterMark: 1024 });
    let sideReading = false;
    const tee = new Tee(async (source) => {
      // Reads nothing until told to.
      while (!sideReading) await nextTurn();
      source.pipe(side);
      await drain(side);
    });
    let passed = 0;
    const counter = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        passed += 1;
        callback();
      },
    });
    const flowing = pipeline(Readable.from(pieces(2000)), tee.transform, counter);
    for (let turn = 0; turn < 50; turn++) await nextTurn();
    // Only what the side stream's buffers hold (2 × 64 KiB) went by while the side read
    // nothing, not the 2 MiB that were ready.
    expect(passed).to.be.below(200);
    sideReading = true;
    await flowing;
    expect(passed).to.equal(2000);
    await tee.commit();
  });

  it('carries on without the side when the side fails, and reports its failure', async () => {
    const tee = new Tee(async (source) => {
      for await (const chunk of source) if (chunk) throw new Error('side gave up');
    });
    const data = pieces(50);
    const out = await drain(Readable.from(data).pipe(tee.transform));
    expect(out.equals(Buffer.concat(data))).to.be.true;
    const outcome = await tee.commit();
    expect(outcome).to.be.instanceOf(Error).with.property('message', 'side gave up');
  });

  it('abandons the side copy on abort: the sink sees the stream fail, not end', async () => {
    const { sink, ended } = collectingSink();
    const tee = new Tee(sink);
    await drain(Readable.from(pieces(2)).pipe(tee.transform));
    const outcome = await tee.abort(new Error('client went away'));
    expect(outcome).to.be.instanceOf(Error).with.property('message', 'client went away');
    expect(ended()).to.be.false;
  });

  it('lets go of a failed side, so what its sink held is not kept alive by the main stream', async () => {
    let copied: WeakRef<Buffer[]> | undefined;
    const tee = new Tee((source) => {
      const held: Buffer[] = [];
      copied = new WeakRef(held);
      const keep = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          held.push(chunk);
          callback(held.length < 3 ? null : new Error('no room'));
        },
      });
      // pipeline leaves listeners on the source it destroys, which reach `keep`.
      return pipeline(source, new PassThrough(), keep);
    });
    // The main stream stays alive and unfinished, as a stalled reader's does.
    const main = tee.transform.resume();
    for (const piece of pieces(5, 64 * 1024)) main.write(piece);
    expect(await tee.done)
      .to.be.instanceOf(Error)
      .with.property('message', 'no room');
    await nextTurn();
    collectGarbage();
    expect(copied?.deref(), 'the failed copy is still reachable').to.equal(undefined);
    main.destroy();
  });
});
