import type { V1Job } from '@kubernetes/client-node';
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BlobCacheStatusBackfill } from '../../../operator/src/api/v1alpha1/types.generated.ts';
import {
  decideBackfill,
  progressRatio,
  type BackfillInputs,
} from '../../../operator/src/controller/backfill.ts';
import type { PartitionReport } from '../../../operator/src/redis/backfill-state.ts';
import {
  BACKFILL_COMMAND,
  backfillJob,
  backfillJobName,
  RERUN_ANNOTATION,
} from '../../../operator/src/resources/backfill-job.ts';
import { IMAGES } from '../../../scripts/image/spec.ts';
import { REPO_ROOT } from '../../harness/dataplane.ts';
import { blobCache } from './fixtures.ts';

const NOW = new Date('2026-12-01T10:00:00Z');

function withStatus(backfill: BlobCacheStatusBackfill | undefined, spec = {}, rerun?: string) {
  const cache = blobCache(spec);
  cache.status = backfill === undefined ? {} : { backfill };
  if (rerun !== undefined) cache.metadata.annotations = { [RERUN_ANNOTATION]: rerun };
  return cache;
}

function report(partition: number, fields: Partial<PartitionReport> = {}): PartitionReport {
  return {
    incarnation: 'inc-1',
    partition,
    state: 'loading',
    blobsTotal: 10,
    bytesTotal: 1000,
    blobs: 5,
    bytes: 400,
    blobsSkipped: 0,
    bytesPerSecond: 100,
    secondsLeft: 6,
    ...fields,
  };
}

function jobWith(condition?: { type: string; message?: string }): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'j' },
    status: {
      active: condition === undefined ? 2 : 0,
      ...(condition === undefined
        ? {}
        : {
            conditions: [
              {
                type: condition.type,
                status: 'True',
                lastTransitionTime: new Date('2026-12-01T09:00:00Z'),
                ...(condition.message === undefined ? {} : { message: condition.message }),
              },
            ],
          }),
    },
  };
}

const inputs = (fields: Partial<BackfillInputs> = {}): BackfillInputs => ({
  incarnation: 'inc-1',
  job: null,
  reports: [],
  ...fields,
});

describe('backfill decisions', () => {
  const running = {
    incarnation: 'inc-1',
    phase: 'Running',
    job: backfillJobName('c', 'inc-1'),
    startedAt: '2026-12-01T08:00:00Z',
  };

  it('starts one Job for a new incarnation with policy OnColdStart, and says so', () => {
    const decision = decideBackfill(withStatus(undefined), inputs(), NOW);
    expect(decision.create).to.deep.equal({ incarnation: 'inc-1' });
    expect(decision.status).to.deep.include({
      incarnation: 'inc-1',
      phase: 'Pending',
      job: backfillJobName('c', 'inc-1'),
      startedAt: '2026-12-01T10:00:00Z',
    });
    expect(decision.warm).to.deep.include({ status: 'False', reason: 'Backfilling' });
    expect(decision.events.map((event) => event.reason)).to.deep.equal(['BackfillStarted']);
    expect(decision.keep).to.be.true;
  });

  it('creates nothing with policy Never, and records the incarnation as skipped', () => {
    const decision = decideBackfill(
      withStatus(undefined, { backfill: { policy: 'Never' } }),
      inputs(),
      NOW,
    );
    expect(decision.create).to.equal(undefined);
    expect(decision.status).to.deep.include({ incarnation: 'inc-1', phase: 'Skipped' });
    expect(decision.warm).to.deep.include({ status: 'Unknown', reason: 'BackfillNever' });
    // ...and changing the policy later does not start one for the same data set.
    const later = decideBackfill(withStatus(decision.status), inputs(), NOW);
    expect(later.create).to.equal(undefined);
    expect(later.status?.phase).to.equal('Skipped');
  });

  it('reports the pods progress while the Job runs, and asks for the same Job (never a second)', () => {
    const cache = withStatus(running, { backfill: { maxBytes: '5Gi', parallelism: 3 } });
    const decision = decideBackfill(
      cache,
      inputs({ job: jobWith(), reports: [report(0), report(1, { bytes: 600, secondsLeft: 9 })] }),
      NOW,
    );
    expect(decision.create).to.deep.equal({ incarnation: 'inc-1' });
    expect(decision.status).to.deep.include({
      phase: 'Running',
      loadedBytes: 1000,
      totalBytes: 2000,
      percent: 50,
      partitionsReporting: 2,
      secondsLeft: 9,
      bytesPerSecond: 200,
      job: backfillJobName('c', 'inc-1'),
    });
    expect(decision.warm?.message).to.equal(
      '50% of the selected bytes loaded (2/3 pods reporting)',
    );
    expect(decision.requeueAfterMs).to.be.greaterThan(0);
    expect(progressRatio(decision.status)).to.equal(0.5);
  });

  it('marks success from the Job, Warm True with an Event, and keeps the Job its TTL', () => {
    const decision = decideBackfill(
      withStatus(running),
      inputs({
        job: jobWith({ type: 'Complete' }),
        reports: [report(0, { state: 'done', bytes: 1000, blobs: 10 })],
      }),
      NOW,
    );
    expect(decision.status).to.deep.include({
      phase: 'Succeeded',
      percent: 100,
      completedAt: '2026-12-01T09:00:00Z',
    });
    expect(decision.warm).to.deep.include({ status: 'True', reason: 'BackfillSucceeded' });
    expect(decision.events.map((event) => event.reason)).to.deep.equal(['BackfillSucceeded']);
    expect(progressRatio(decision.status)).to.equal(1);
    // A day later (the default TTL) it is no longer kept: the prune phase removes it.
    const status = decision.status!;
    expect(
      decideBackfill(withStatus(status), inputs({ job: jobWith({ type: 'Complete' }) }), NOW).keep,
    ).to.be.true;
    const dayLater = new Date(Date.parse(status.completedAt!) + 86_400_000 + 1000);
    const expired = decideBackfill(
      withStatus(status),
      inputs({ job: jobWith({ type: 'Complete' }) }),
      dayLater,
    );
    expect(expired.keep).to.be.false;
    expect(expired.events).to.deep.equal([]);
  });

  it('shows a failure as Warm False, a Warning Event, and the pod error', () => {
    const decision = decideBackfill(
      withStatus(running),
      inputs({
        job: jobWith({ type: 'Failed', message: 'Job has reached the specified backoff limit' }),
        reports: [report(1, { state: 'failed', error: '3 blob(s) could not be loaded' })],
      }),
      NOW,
    );
    expect(decision.status?.phase).to.equal('Failed');
    expect(decision.warm).to.deep.include({ status: 'False', reason: 'BackfillFailed' });
    expect(decision.warm?.message).to.match(
      /^Job has reached the specified backoff limit \(partition 1: 3 blob\(s\) could not be loaded\)/,
    );
    expect(decision.events).to.have.length(1);
    expect(decision.events[0]).to.include({ type: 'Warning', reason: 'BackfillFailed' });
  });

  it('starts over for a newer incarnation (a wipe), letting the older Job go', () => {
    const done = { ...running, phase: 'Succeeded', completedAt: '2026-12-01T09:00:00Z' };
    const decision = decideBackfill(withStatus(done), inputs({ incarnation: 'inc-2' }), NOW);
    expect(decision.create).to.deep.equal({ incarnation: 'inc-2' });
    expect(decision.status?.job).to.equal(backfillJobName('c', 'inc-2'));
    expect(decision.status?.job).to.not.equal(done.job);
  });

  it('changes nothing while Redis cannot be asked, and cancels a run when the policy turns Never', () => {
    const blind = decideBackfill(withStatus(running), inputs({ incarnation: undefined }), NOW);
    expect(blind).to.deep.equal({ status: running, keep: true, events: [] });
    const cancelled = decideBackfill(
      withStatus(running, { backfill: { policy: 'Never' } }),
      inputs(),
      NOW,
    );
    expect(cancelled.keep).to.be.false;
    expect(cancelled.status?.phase).to.equal('Cancelled');
    expect(progressRatio(cancelled.status)).to.equal(null);
  });
});

describe('backfill reruns (the blobcache.io/backfill-rerun annotation)', () => {
  const first = backfillJobName('c', 'inc-1');
  const failed = {
    incarnation: 'inc-1',
    phase: 'Failed',
    job: first,
    startedAt: '2026-12-01T08:00:00Z',
    completedAt: '2026-12-01T09:00:00Z',
    loadedBytes: 300,
    totalBytes: 1000,
  };

  it('runs a finished backfill again for a new value: a new Job, the old one let go, progress from zero', () => {
    const decision = decideBackfill(
      withStatus(failed, {}, 'try-2'),
      inputs({ job: jobWith({ type: 'Failed' }) }),
      NOW,
    );
    const rerunJob = backfillJobName('c', 'inc-1', 'try-2');
    expect(rerunJob).to.not.equal(first);
    expect(decision.create).to.deep.equal({ incarnation: 'inc-1', rerun: 'try-2' });
    expect(decision.status).to.deep.equal({
      incarnation: 'inc-1',
      phase: 'Pending',
      job: rerunJob,
      startedAt: '2026-12-01T10:00:00Z',
      rerun: 'try-2',
      message: decision.status?.message,
    });
    expect(decision.status?.message).to.include('again (blobcache.io/backfill-rerun=try-2)');
    expect(decision.warm).to.deep.include({ status: 'False', reason: 'Backfilling' });
    expect(decision.events).to.have.length(1);
    expect(decision.events[0]).to.include({ type: 'Normal', reason: 'BackfillStarted' });
    expect(decision.events[0]!.message).to.include('its last run: Failed');
    expect(progressRatio(decision.status)).to.equal(0);
    // The same value once more asks for nothing: the rerun's Job is the one asked for.
    const again = decideBackfill(withStatus(decision.status, {}, 'try-2'), inputs(), NOW);
    expect(again.create).to.deep.equal({ incarnation: 'inc-1', rerun: 'try-2' });
    expect(again.status?.job).to.equal(rerunJob);
    expect(again.events).to.deep.equal([]);
  });

  it("counts only the rerun's own progress reports, not the earlier run's", () => {
    const rerunJob = backfillJobName('c', 'inc-1', 'try-2');
    const pending = { incarnation: 'inc-1', phase: 'Pending', job: rerunJob, rerun: 'try-2' };
    const stale = decideBackfill(
      withStatus(pending, {}, 'try-2'),
      inputs({ reports: [report(0, { run: first, state: 'failed' }), report(1)] }),
      NOW,
    );
    expect(stale.status).to.include({ phase: 'Pending' });
    expect(stale.status?.partitionsReporting).to.equal(undefined);
    const fresh = decideBackfill(
      withStatus(pending, {}, 'try-2'),
      inputs({ reports: [report(0, { run: rerunJob }), report(1, { run: first })] }),
      NOW,
    );
    expect(fresh.status).to.include({ phase: 'Running', partitionsReporting: 1, loadedBytes: 400 });
  });

  it('waits for a run under way to end before running again', () => {
    const running = { ...failed, phase: 'Running', completedAt: undefined };
    const during = decideBackfill(
      withStatus(running, {}, 'try-2'),
      inputs({ job: jobWith() }),
      NOW,
    );
    expect(during.create).to.deep.equal({ incarnation: 'inc-1' });
    expect(during.status?.job).to.equal(first);
    const ended = decideBackfill(
      withStatus(running, {}, 'try-2'),
      inputs({ job: jobWith({ type: 'Complete' }) }),
      NOW,
    );
    expect(ended.status?.phase).to.equal('Succeeded');
    expect(ended.requeueAfterMs).to.be.at.most(1_000);
    const next = decideBackfill(withStatus(ended.status, {}, 'try-2'), inputs(), NOW);
    expect(next.create).to.deep.equal({ incarnation: 'inc-1', rerun: 'try-2' });
  });

  it('takes a value already there when the data set was new as answered', () => {
    const start = decideBackfill(withStatus(undefined, {}, 'old'), inputs(), NOW);
    expect(start.status).to.include({ rerun: 'old', job: first });
    const done = { ...start.status!, phase: 'Failed', completedAt: '2026-12-01T09:00:00Z' };
    const later = decideBackfill(withStatus(done, {}, 'old'), inputs(), NOW);
    expect(later.create).to.equal(undefined);
    expect(later.status?.phase).to.equal('Failed');
  });

  it('starts a backfill skipped under policy Never once the policy allows it, and refuses one under Never', () => {
    const skipped = { incarnation: 'inc-1', phase: 'Skipped', message: 'never' };
    const refused = decideBackfill(
      withStatus(skipped, { backfill: { policy: 'Never' } }, 'now'),
      inputs(),
      NOW,
    );
    expect(refused.create).to.equal(undefined);
    expect(refused.status).to.include({ phase: 'Skipped', rerun: 'now' });
    expect(refused.events).to.have.length(1);
    expect(refused.events[0]).to.include({ type: 'Warning', reason: 'BackfillRerunRefused' });
    const allowed = decideBackfill(withStatus(skipped, {}, 'now'), inputs(), NOW);
    expect(allowed.create).to.deep.equal({ incarnation: 'inc-1', rerun: 'now' });
  });
});

describe('backfill Job', () => {
  it('is an indexed Job of the data-plane image running its backfill entry point', () => {
    const cache = blobCache({
      backfill: { maxBytes: '2Gi', parallelism: 3 },
      store: { s3: { bucket: 'b', credentialsSecretName: 's3-creds' } },
    });
    const job = backfillJob(cache, 'inc-1');
    expect(job.metadata?.name).to.equal(backfillJobName('c', 'inc-1'));
    expect(job.metadata?.name).to.match(/^c-backfill-[0-9a-f]{6}$/);
    expect(job.metadata?.annotations).to.deep.equal({ 'blobcache.io/incarnation': 'inc-1' });
    expect(job.metadata?.ownerReferences?.[0]).to.include({
      kind: 'BlobCache',
      uid: 'u-1',
      controller: true,
    });
    expect(job.spec).to.include({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
    const pod = job.spec!.template.spec!;
    expect(pod.restartPolicy).to.equal('Never');
    const container = pod.containers[0]!;
    expect(container.image).to.equal(cache.spec.http.image);
    expect(container.command).to.deep.equal(BACKFILL_COMMAND);
    expect(container.envFrom).to.deep.equal([{ configMapRef: { name: 'c-config' } }]);
    const env = Object.fromEntries(
      (container.env ?? []).map((variable) => [variable.name, variable]),
    );
    expect(env.BLOBCACHE_BACKFILL_MAX_BYTES?.value).to.equal(String(2 * 1024 ** 3));
    expect(env.BLOBCACHE_BACKFILL_PARTITIONS?.value).to.equal('3');
    expect(env.BLOBCACHE_REDIS_PASSWORD?.valueFrom?.secretKeyRef).to.include({
      name: 'c-redis',
      key: 'password',
    });
    expect(env.AWS_ACCESS_KEY_ID?.valueFrom?.secretKeyRef?.name).to.equal('s3-creds');
    expect(container.securityContext).to.include({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
  });

  it("runs the command the image's backfill entry point names, which exists", () => {
    expect(BACKFILL_COMMAND).to.deep.equal(IMAGES.blobcache.entryPoints.backfill);
    const source = BACKFILL_COMMAND.at(-1)!
      .replace(/^dist\//, '')
      .replace(/\.js$/, '.ts');
    expect(readFileSync(join(REPO_ROOT, source), 'utf8')).to.include('runBackfill');
  });

  it('is named per rerun, says which value it answers, and tags its reports with its name', () => {
    const job = backfillJob(blobCache(), 'inc-1', 'again');
    expect(job.metadata?.name).to.equal(backfillJobName('c', 'inc-1', 'again'));
    expect(job.metadata?.annotations).to.deep.equal({
      'blobcache.io/incarnation': 'inc-1',
      'blobcache.io/backfill-rerun': 'again',
    });
    for (const made of [job, backfillJob(blobCache(), 'inc-1')]) {
      const env = made.spec!.template.spec!.containers[0]!.env ?? [];
      expect(env.find((variable) => variable.name === 'BLOBCACHE_BACKFILL_RUN')?.value).to.equal(
        made.metadata?.name,
      );
    }
  });

  it('gets a new name per incarnation, short enough for the pods hostnames', () => {
    const longest = 'x'.repeat(43);
    expect(`${backfillJobName(longest, 'inc')}-15`.length).to.be.at.most(63);
    expect(backfillJobName('c', 'inc-1')).to.not.equal(backfillJobName('c', 'inc-2'));
  });
});
