import { expect } from 'chai';
import { FillProgress } from '../../../dataplane/src/blob/fill-progress.ts';
import { ReadAheadBudget } from '../../../dataplane/src/redis/chunks.ts';

const CHUNK = 1024;

function progressOf(chunks: number, budget = new ReadAheadBudget(64 * CHUNK), windowChunks = 2) {
  return new FillProgress({
    key: 'k',
    size: chunks * CHUNK - 10,
    chunkBytes: CHUNK,
    uploadId: 'u',
    budget,
    windowChunks,
  });
}

/** Whether `promise` settled by the time pending callbacks ran. */
async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

describe('FillProgress', () => {
  it('lets readers take each chunk once stored, but the last only once the fill finished', async () => {
    const progress = progressOf(3);
    const waiting = progress.waitForBytes(0, 0);
    expect(await settledYet(waiting)).to.be.false;
    progress.stored(0);
    expect(await settledYet(waiting)).to.be.true;
    progress.stored(1);
    progress.stored(2);
    expect(progress.readableChunks).to.equal(2);
    const last = progress.waitForBytes(2, 0);
    expect(await settledYet(last)).to.be.false;
    progress.finish();
    expect(await settledYet(last)).to.be.true;
    expect(progress.readableChunks).to.equal(3);
    await progress.settled;
  });

  it('ignores chunks reported out of order or twice', () => {
    const progress = progressOf(4);
    progress.stored(1);
    expect(progress.readableChunks).to.equal(0);
    progress.stored(0);
    progress.stored(0);
    expect(progress.readableChunks).to.equal(1);
  });

  it('fails every waiter, and later ones, when the fill fails', async () => {
    const progress = progressOf(3);
    const waiting = progress.waitForBytes(1, 0);
    progress.fail(new Error('damaged'));
    const errors = await Promise.all([
      waiting.catch((error: Error) => error.message),
      progress.waitForBytes(2, 0).catch((error: Error) => error.message),
      progress.settled.catch((error: Error) => error.message),
    ]);
    expect(errors).to.deep.equal(['damaged', 'damaged', 'damaged']);
  });

  it('keeps a window of recent chunks for attached readers, within the budget', () => {
    const budget = new ReadAheadBudget(64 * CHUNK);
    const progress = progressOf(6, budget, 2);
    const detach = progress.attach();
    for (let i = 0; i < 4; i++) progress.stored(i, Buffer.alloc(CHUNK, i));
    expect(budget.inUse()).to.equal(2 * CHUNK);
    expect(progress.windowStart).to.equal(2);
    expect(progress.take(1)).to.equal(undefined);
    expect(progress.take(3)?.[0]).to.equal(3);
    // A pinned chunk keeps its bytes (and its budget) after it leaves the window.
    progress.stored(4, Buffer.alloc(CHUNK, 4));
    progress.stored(5, Buffer.alloc(CHUNK, 5));
    expect(budget.inUse()).to.equal(3 * CHUNK);
    progress.release(3);
    expect(budget.inUse()).to.equal(2 * CHUNK);
    detach();
    expect(budget.inUse()).to.equal(0);
  });

  it('keeps nothing in memory without readers, or without room in the budget', () => {
    const budget = new ReadAheadBudget(CHUNK);
    const progress = progressOf(4, budget);
    progress.stored(0, Buffer.alloc(CHUNK));
    expect(budget.inUse()).to.equal(0);
    const detach = progress.attach();
    progress.stored(1, Buffer.alloc(CHUNK));
    progress.stored(2, Buffer.alloc(CHUNK));
    expect(budget.inUse()).to.equal(CHUNK);
    expect(progress.take(1)).to.not.equal(undefined);
    expect(progress.take(2)).to.equal(undefined);
    progress.release(1);
    detach();
    expect(budget.inUse()).to.equal(0);
  });

  it('hands out received bytes of a chunk before Redis has it, and forgets them once readable', async () => {
    const progress = progressOf(2);
    const buffer = Buffer.alloc(CHUNK, 1);
    const waiting = progress.waitForBytes(0, 0);
    expect(await settledYet(waiting)).to.be.false;
    progress.received(0, buffer, 100);
    expect(await settledYet(waiting)).to.be.true;
    expect(progress.receivedBytes(0, 0)?.length).to.equal(100);
    expect(progress.receivedBytes(0, 40)?.length).to.equal(60);
    expect(progress.receivedBytes(0, 100)).to.equal(undefined);
    // A reader that has the first 100 bytes waits for more, not for the whole chunk.
    const more = progress.waitForBytes(0, 100);
    progress.received(0, buffer, 100);
    expect(await settledYet(more)).to.be.false;
    progress.received(0, buffer, 300);
    expect(await settledYet(more)).to.be.true;
    progress.stored(0, buffer);
    expect(progress.readableChunks).to.equal(1);
    expect(progress.receivedBytes(0, 0)).to.equal(undefined);
  });

  it('keeps the received bytes of the last chunk until the fill finished, and drops them on failure', async () => {
    const progress = progressOf(2);
    progress.stored(0);
    const last = Buffer.alloc(CHUNK - 10, 2);
    progress.received(1, last, CHUNK - 10);
    progress.stored(1, last);
    expect(progress.readableChunks).to.equal(1);
    expect(progress.receivedBytes(1, 0)?.length).to.equal(CHUNK - 10);
    const waiting = progress.waitForBytes(1, CHUNK - 10);
    progress.fail(new Error('damaged'));
    expect(await waiting.catch((error: Error) => error.message)).to.equal('damaged');
    expect(progress.receivedBytes(1, 0)).to.equal(undefined);
    expect(await progress.waitForBytes(1, 0).catch((error: Error) => error.message)).to.equal(
      'damaged',
    );
  });

  it('finishes an empty blob with nothing to read', async () => {
    const progress = new FillProgress({
      key: 'k',
      size: 0,
      chunkBytes: CHUNK,
      uploadId: 'u',
      budget: new ReadAheadBudget(CHUNK),
    });
    expect(progress.chunkCount).to.equal(0);
    progress.finish();
    await progress.settled;
    expect(progress.ended).to.be.true;
  });
});
