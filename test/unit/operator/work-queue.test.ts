import { expect } from 'chai';
import { WorkQueue } from '../../../operator/src/controller/work-queue.ts';

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
    queue.done(key!);
    expect(queue.length).to.equal(1);
    queue.shutdown();
  });

  it('backs off exponentially per key and forgets after success', () => {
    const queue = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 35 });
    expect([
      queue.addRateLimited('a'),
      queue.addRateLimited('a'),
      queue.addRateLimited('a'),
      queue.addRateLimited('a'),
    ]).to.deep.equal([10, 20, 35, 35]);
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
});
