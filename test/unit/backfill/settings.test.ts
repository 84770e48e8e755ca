import { expect } from 'chai';
import {
  formatBytes,
  progressLine,
  type BackfillReport,
} from '../../../dataplane/src/backfill/progress.ts';
import { parseBackfillSettings } from '../../../dataplane/src/backfill/settings.ts';
import { ConfigError } from '../../../dataplane/src/config-values.ts';

describe('backfill settings', () => {
  it('takes flags, then the environment (the indexed Job gives the partition), then defaults', () => {
    expect(
      parseBackfillSettings(['--max-bytes', '2Gi', '--parallelism=8'], {
        JOB_COMPLETION_INDEX: '2',
        BLOBCACHE_BACKFILL_PARTITIONS: '4',
      }),
    ).to.deep.equal({
      maxBytes: 2 * 1024 ** 3,
      parallelism: 8,
      partition: 2,
      partitions: 4,
      progressIntervalMs: 5000,
    });
    expect(
      parseBackfillSettings(['--partition', '0'], {
        BLOBCACHE_BACKFILL_MAX_BYTES: '10Mi',
        JOB_COMPLETION_INDEX: '3',
      }),
    ).to.include({ maxBytes: 10 * 1024 ** 2, partition: 0, partitions: 1 });
  });

  it("names the run from BLOBCACHE_BACKFILL_RUN (a backfill Job's name), and none when unset", () => {
    expect(
      parseBackfillSettings(['--max-bytes', '1Gi'], {
        BLOBCACHE_BACKFILL_RUN: 'c-backfill-0a1b2c',
      }),
    ).to.include({ run: 'c-backfill-0a1b2c' });
    expect(
      parseBackfillSettings(['--max-bytes', '1Gi'], { BLOBCACHE_BACKFILL_RUN: '' }),
    ).to.not.have.property('run');
  });

  const bad: [string[], Record<string, string>, RegExp][] = [
    [[], {}, /--max-bytes .* is required/],
    [['--max-bytes', 'lots'], {}, /^--max-bytes must be a size/],
    [['--max-bytes', '1Gi', '--parallelism', '0'], {}, /^--parallelism must be from 1/],
    [['--max-bytes', '1Gi', '--partition', '2', '--partitions', '2'], {}, /must be below/],
    [['--max-bytes', '1Gi'], { JOB_COMPLETION_INDEX: 'x' }, /^JOB_COMPLETION_INDEX must be/],
    [['--max-bytes'], {}, /--max-bytes needs a value/],
    [['--max-bytes', '1Gi', '--fast'], {}, /Unknown argument '--fast'/],
  ];
  for (const [argv, env, message] of bad) {
    it(`refuses ${JSON.stringify(argv)} ${JSON.stringify(env)}, naming the setting`, () => {
      expect(() => parseBackfillSettings(argv, env)).to.throw(ConfigError, message);
    });
  }

  it('answers --help with null (the command prints its usage)', () => {
    expect(parseBackfillSettings(['--help'], {})).to.equal(null);
  });
});

describe('backfill progress line', () => {
  const report: BackfillReport = {
    incarnation: 'i',
    partition: 0,
    partitions: 2,
    state: 'loading',
    blobsTotal: 100,
    bytesTotal: 540 * 1024 * 1024,
    blobs: 57,
    bytes: 312.5 * 1024 * 1024,
    blobsLoaded: 40,
    bytesLoaded: 210 * 1024 * 1024,
    blobsSkipped: 0,
    maxBytes: 1024 ** 3,
    bytesPerSecond: 97.3 * 1024 * 1024,
    secondsLeft: 2.4,
    startedAt: '',
    updatedAt: '',
  };

  it('says blobs, bytes, percent of the share, rate and time left in words', () => {
    expect(progressLine(report)).to.equal(
      'Backfill 1/2: 57/100 blobs, 312.5 MiB of 540.0 MiB (57%; budget 1.0 GiB over 2 partitions); 40 loaded (210.0 MiB), 0 skipped; 97.3 MiB/s, about 3 s left',
    );
    expect(progressLine({ ...report, state: 'done' })).to.match(/^Backfill 1\/2 done: 57\/100/);
    expect(progressLine({ ...report, state: 'listing' })).to.equal(
      'Backfill 1/2: listing the durable tier',
    );
  });

  it('formats sizes in binary units', () => {
    expect(formatBytes(0)).to.equal('0 B');
    expect(formatBytes(1536)).to.equal('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 4)).to.equal('5.0 TiB');
  });
});
