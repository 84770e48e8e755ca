import { expect } from 'chai';
import { WorkQueue } from '../../../operator/src/controller/work-queue.ts';

/** Milliseconds until the queue hands out its next key. */
async function timeToNext(queue: WorkQueue): Promise<number> {
  const started = performance.now();
  await queue.next();
  return performance.now() - started;
}

describe('WorkQueue', () => {
  it('de-duplicates keys waiting in the queue', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    queue.add('a');
    queue.add('b');
    expect(queue.length).to.equal(2);
    expect(await queue.next()).to.equal('a');
    expect(await queue.next()).to.equal('b');
    queue.shutdown();
  });

  it('never hands one key to two workers, and re-queues a key added while it was processed', async () => {
    const queue = new WorkQueue();
    queue.add('a');
    const key = await queue.next();
    queue.add('a');
    expect(queue.length).to.equal(0);
    expect(queue.pending).to.equal(1);
    queue.done(key!);
    expect(queue.length).to.equal(1);
    queue.shutdown();
  });

  it('backs off exponentially per key and forgets after success', async () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 35 });
    const delays: number[] = [];
    for (let failure = 0; failure < 4; failure++) {
      delays.push(queue.addRateLimited('a'));
      queue.done((await queue.next())!); // the retry came and failed again
    }
    expect(delays).to.deep.equal([10, 20, 35, 35]);
    queue.forget('a');
    expect(queue.addRateLimited('a')).to.equal(10);
    queue.shutdown();
  });

  it('delivers delayed keys, and next() ends after shutdown', async () => {
    const queue = new WorkQueue();
    queue.addAfter('later', 20);
    expect(await queue.next()).to.equal('later');
    queue.shutdown();
    expect(await queue.next()).to.equal(undefined);
  });

  it('brings a key back after its back-off even when a long requeue was armed first', async () => {
    const queue = new WorkQueue({ baseDelayMs: 50 });
    queue.addAfter('a', 30_000); // the periodic requeue after a success
    const delay = queue.addRateLimited('a'); // then a failure
    expect(delay).to.equal(50);
    const waited = await timeToNext(queue);
    expect(waited).to.be.at.least(40).and.below(10_000);
    queue.shutdown();
  });

  it('keeps the earlier deadline when a later one is asked for, and reports the real delay', async () => {
    const queue = new WorkQueue({ baseDelayMs: 30_000 });
    expect(queue.addAfter('a', 50)).to.equal(50);
    const reported = queue.addRateLimited('a'); // would be 30 s on its own
    expect(reported).to.be.at.most(50);
    const waited = await timeToNext(queue);
    expect(waited).to.be.below(10_000);
    queue.shutdown();
  });
});
