import { expect } from 'chai';
import { GroupCommit } from '../../dataplane/src/group-commit.ts';

/** A batch runner whose batches end when the test says so. */
function controlledRuns() {
  const runs: { group: string; items: number[]; finish: (error?: Error) => void }[] = [];
  const commit = new GroupCommit<number, string>({
    run: (group, items) =>
      new Promise((resolve, reject) => {
        runs.push({
          group,
          items: [...items],
          finish: (error) =>
            error === undefined ? resolve(items.map((item) => `${group}:${item}`)) : reject(error),
        });
      }),
    maxBatch: 3,
  });
  return { commit, runs };
}

async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('It did not fail');
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('group commit', () => {
  it('runs a lone item at once, in a batch of its own', async () => {
    const { commit, runs } = controlledRuns();
    const result = commit.submit('a', 1);
    expect(runs.map((run) => run.items)).to.deep.equal([[1]]);
    runs[0]!.finish();
    expect(await result).to.equal('a:1');
  });

  it('never adds an item to a batch that already started: it waits for the next, shared with the others that came meanwhile', async () => {
    const { commit, runs } = controlledRuns();
    const first = commit.submit('a', 1);
    const later = [commit.submit('a', 2), commit.submit('a', 3)];
    expect(runs.map((run) => run.items)).to.deep.equal([[1]]);
    runs[0]!.finish();
    expect(await first).to.equal('a:1');
    await settle();
    expect(runs.map((run) => run.items)).to.deep.equal([[1], [2, 3]]);
    runs[1]!.finish();
    expect(await Promise.all(later)).to.deep.equal(['a:2', 'a:3']);
    expect(commit.batches).to.equal(2);
  });

  it('keeps groups apart: another group starts its own batch while one runs', () => {
    const { commit, runs } = controlledRuns();
    void commit.submit('a', 1);
    void commit.submit('b', 2);
    expect(runs.map((run) => [run.group, run.items])).to.deep.equal([
      ['a', [1]],
      ['b', [2]],
    ]);
  });

  it('caps a batch at maxBatch; the rest go in the batch after', async () => {
    const { commit, runs } = controlledRuns();
    void commit.submit('a', 0);
    const waiting = [1, 2, 3, 4, 5].map((item) => commit.submit('a', item));
    runs[0]!.finish();
    await settle();
    expect(runs[1]!.items).to.deep.equal([1, 2, 3]);
    runs[1]!.finish();
    await settle();
    expect(runs[2]!.items).to.deep.equal([4, 5]);
    runs[2]!.finish();
    expect(await Promise.all(waiting)).to.deep.equal(['a:1', 'a:2', 'a:3', 'a:4', 'a:5']);
  });

  it('fails every item of a failed batch, and the next batch still runs', async () => {
    const { commit, runs } = controlledRuns();
    const first = commit.submit('a', 1);
    const second = commit.submit('a', 2);
    runs[0]!.finish(new Error('fsync failed'));
    expect(await failureOf(first)).to.equal('fsync failed');
    await settle();
    runs[1]!.finish();
    expect(await second).to.equal('a:2');
  });

  it('fails the batch when the runner answers the wrong number of results', async () => {
    const commit = new GroupCommit<number, string>({ run: () => Promise.resolve([]) });
    expect(await failureOf(commit.submit('a', 1))).to.equal('A batch of 1 answered 0 results');
  });
});
