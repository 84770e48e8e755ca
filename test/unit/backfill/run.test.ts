import { expect } from 'chai';
import type { BackfillReport } from '../../../dataplane/src/backfill/progress.ts';
import { runBackfill, type BackfillDeps } from '../../../dataplane/src/backfill/run.ts';
import { DigestMismatchError } from '../../../dataplane/src/blob/errors.ts';
import type { FillResult } from '../../../dataplane/src/blob/fills.ts';
import type { ListedBlob } from '../../../dataplane/src/blob/store.ts';
import { silentLogger } from '../../harness/logger.ts';

const key = (n: number) => n.toString(16).padStart(32, '0');

/** Fill outcomes by key (a list: one per attempt), over a listing of blobs of 10 bytes. */
function depsOf(
  outcomes: Record<string, FillResult[]>,
  cached: Set<string> = new Set(),
): BackfillDeps & { reports: BackfillReport[]; filled: string[] } {
  const reports: BackfillReport[] = [];
  const filled: string[] = [];
  const blobs: ListedBlob[] = Object.keys(outcomes).map((k, i) => ({
    key: k,
    size: 10,
    modifiedMs: 1000 + i,
  }));
  return {
    reports,
    filled,
    store: {
      async *list() {
        for (const blob of blobs) yield await Promise.resolve(blob);
      },
    },
    fill(k) {
      filled.push(k);
      return Promise.resolve(outcomes[k]!.shift()!);
    },
    isCached: (k) => Promise.resolve(cached.has(k)),
    publish: (report) => {
      reports.push(structuredClone(report));
      return Promise.resolve();
    },
    print: () => undefined,
    logger: silentLogger,
  };
}

const settings = {
  maxBytes: 1000,
  parallelism: 2,
  partition: 0,
  partitions: 1,
  incarnation: 'abc',
  progressIntervalMs: 60_000,
};

describe('runBackfill', () => {
  it('counts loaded, found and skipped blobs, and retries passing trouble', async () => {
    const deps = depsOf(
      {
        [key(1)]: [{ kind: 'filled', size: 10, end: 'published' }],
        [key(2)]: [{ kind: 'joined', size: 10 }],
        [key(3)]: [{ kind: 'failed', error: new DigestMismatchError('damaged') }],
        [key(4)]: [{ kind: 'absent' }],
        [key(5)]: [{ kind: 'busy' }, { kind: 'filled', size: 10, end: 'published' }],
        [key(6)]: [],
      },
      new Set([key(6)]),
    );
    const report = await runBackfill(deps, settings);
    expect(report).to.include({
      state: 'done',
      incarnation: 'abc',
      blobsTotal: 6,
      blobs: 4,
      bytes: 40,
      blobsLoaded: 2,
      bytesLoaded: 20,
      blobsSkipped: 2,
    });
    expect(deps.filled.filter((k) => k === key(5))).to.have.length(2);
    expect(deps.filled).to.not.include(key(6));
    expect(deps.reports[0]!.state).to.equal('listing');
    expect(deps.reports.at(-1)!.state).to.equal('done');
    expect(deps.reports.every((written) => written.run === undefined)).to.be.true;
  });

  it('names its run in every report it writes', async () => {
    const deps = depsOf({ [key(1)]: [{ kind: 'filled', size: 10, end: 'published' }] });
    await runBackfill(deps, { ...settings, run: 'c-backfill-0a1b2c' });
    expect(deps.reports.map((written) => written.run)).to.deep.equal(
      deps.reports.map(() => 'c-backfill-0a1b2c'),
    );
  });

  it('fails (for a retry of the Job) when a blob keeps failing for another reason than damage', async () => {
    const trouble: FillResult = { kind: 'failed', error: new Error('S3 is down') };
    const deps = depsOf({
      [key(1)]: [trouble, trouble, trouble],
      [key(2)]: [{ kind: 'filled', size: 10, end: 'published' }],
    });
    const report = await runBackfill(deps, settings);
    expect(report.state).to.equal('failed');
    expect(report.error).to.match(/1 blob\(s\) could not be loaded, e\.g\. .*S3 is down/);
    expect(report.blobsLoaded).to.equal(1);
  });

  it('loads only its partition share of the selection', async () => {
    const outcomes: Record<string, FillResult[]> = {};
    for (let i = 0; i < 40; i++)
      outcomes[`${i.toString(16).padStart(8, '0')}${'0'.repeat(24)}`] = [
        { kind: 'filled', size: 10, end: 'published' },
      ];
    const loaded = await Promise.all(
      [0, 1, 2].map(async (partition) => {
        const deps = depsOf(structuredClone(outcomes));
        await runBackfill(deps, { ...settings, partition, partitions: 3, maxBytes: 300 });
        return deps.filled;
      }),
    );
    const all = loaded.flat();
    expect(all).to.have.length(30);
    expect(new Set(all).size).to.equal(30);
  });
});
