import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedQueue } from '../../../dataplane/src/backends/keyed-queue.ts';

describe('KeyedQueue', () => {
  it('runs tasks of one key one at a time, in order, and other keys alongside', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const task = (name: string, ms: number) => async () => {
      log.push(`${name} start`);
      await sleep(ms);
      log.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([
      queue.run('a', task('a1', 30)),
      queue.run('a', task('a2', 1)),
      queue.run('b', task('b1', 5)),
    ]);
    expect(results).to.deep.equal(['a1', 'a2', 'b1']);
    expect(log.indexOf('a2 start')).to.be.above(log.indexOf('a1 end'));
    expect(log.indexOf('b1 start')).to.be.below(log.indexOf('a1 end'));
  });

  it('goes on after a failing task', async () => {
    const queue = new KeyedQueue();
    const failed = queue.run('a', () => Promise.reject(new Error('boom')));
    const next = queue.run('a', () => Promise.resolve('next'));
    await failed.then(
      () => expect.fail('did not fail'),
      (error: unknown) => expect((error as Error).message).to.equal('boom'),
    );
    expect(await next).to.equal('next');
  });
});
