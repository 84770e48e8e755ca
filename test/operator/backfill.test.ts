import {
  BatchV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type KubernetesObjectApi,
  type V1Job,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  API_VERSION,
  KIND,
  type BlobCache,
} from '../../operator/src/api/v1alpha1/types.generated.ts';
import { PHASES, reconcile } from '../../operator/src/controller/reconcile.ts';
import type { KubeClient } from '../../operator/src/kube/client.ts';
import type { RedisAdmin, RedisEndpoint } from '../../operator/src/redis/admin.ts';
import { makeRedisAdmin } from '../../operator/src/redis/ioredis-admin.ts';
import { backfillJobName } from '../../operator/src/resources/backfill-job.ts';
import { runBackfill } from '../harness/backfill.ts';
import { blobOf, md5 } from '../harness/blobs.ts';
import { freshNamespace, mergeSpec, startTestbed, type Testbed } from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import { reconcileUntil as reconcileUntilDone } from '../harness/reconcile-until.ts';
import { createRedisPod, markRedisPodRunning } from '../harness/redis-pods.ts';
import { startProductionStack, type ProductionStack } from '../harness/production.ts';

/**
 * A RedisAdmin reaching the real Redis Cluster the test's Pods stand for: an API server
 * alone runs no pods, so each Pod's IP is mapped to one real node on loopback (which runs
 * without a password). CLUSTER NODES answers the real addresses, used as they are.
 */
function podsToLoopback(): { admin: RedisAdmin; map(ip: string, port: number): void } {
  const real = makeRedisAdmin({ timeoutMs: 3_000 });
  const ports = new Map<string, number>();
  const at = (node: RedisEndpoint): RedisEndpoint => {
    const port = ports.get(node.host);
    return port === undefined ? { host: node.host, port: node.port } : { host: '127.0.0.1', port };
  };
  const admin = new Proxy(real, {
    get(target, method) {
      const value: unknown = Reflect.get(target, method);
      if (method === 'close' || typeof value !== 'function') return value;
      return (node: RedisEndpoint, ...rest: unknown[]) =>
        (value as (...args: unknown[]) => unknown).call(target, at(node), ...rest);
    },
  });
  return { admin, map: (ip, port) => void ports.set(ip, port) };
}

/**
 * The reconcile without membership: the harness made this Redis Cluster, on addresses that
 * are not the Pods' (membership, which would write the incarnation, is run for real in the
 * suite after this one).
 */
const WITHOUT_MEMBERSHIP = PHASES.filter((phase) => phase.name !== 'membership');

describe('operator backfill: cold starts make one Job per Redis data set (real API server and Redis Cluster)', function () {
  this.timeout(240_000);
  let bed: Testbed;
  let config: KubeConfig;
  let kube: KubeClient;
  let objects: KubernetesObjectApi;
  let stack: ProductionStack;
  let redis: ReturnType<typeof podsToLoopback>;
  let namespace: string;
  let clock: Date;

  before(async function () {
    this.timeout(600_000);
    [bed, stack] = await Promise.all([startTestbed(), startProductionStack()]);
    ({ config, kube, objects } = bed);
    redis = podsToLoopback();
  });
  after(async () => {
    await redis?.admin.close();
    await Promise.all([bed?.stop(), stack?.stop()]);
  });
  beforeEach(async () => {
    namespace = await freshNamespace(config);
    clock = new Date();
    await stack.cluster.del('bc:incarnation');
  });

  const core = () => config.makeApiClient(CoreV1Api);
  const batch = () => config.makeApiClient(BatchV1Api);
  const run = async (name = 'cache') => {
    await bed.caughtUp(namespace);
    return reconcile(
      { kube, redis: redis.admin, logger, now: () => clock, phases: WITHOUT_MEMBERSHIP },
      { namespace, name },
    );
  };
  const create = (name: string, spec: Record<string, unknown>) =>
    objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace },
      spec: { store: { s3: { bucket: 'bkt' } }, ...spec },
    } as KubernetesObject);
  const status = async (name = 'cache') =>
    (
      await objects.read<BlobCache>({
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name, namespace },
      })
    ).status;
  const warm = async (name = 'cache') =>
    (await status(name))?.conditions?.find((condition) => condition.type === 'Warm');
  const jobs = async () => (await batch().listNamespacedJob({ namespace })).items;
  const annotate = (name: string, annotations: Record<string, string>) =>
    objects.patch(
      { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace, annotations } },
      undefined,
      undefined,
      undefined,
      undefined,
      PatchStrategy.MergePatch,
    );
  const events = async (reason: string) =>
    (await core().listNamespacedEvent({ namespace })).items.filter(
      (event) => event.reason === reason,
    );

  /** The Redis pods of a BlobCache, as its StatefulSets would make them, at real nodes. */
  const redisPods = async (name: string) => {
    for (const [index, node] of stack.redis.nodes.entries()) {
      const shard = Math.floor(index / 2);
      const pod = `${name}-redis-${shard}-${index % 2}`;
      const ip = `10.0.${shard}.${index + 1}`;
      redis.map(ip, node.port);
      await core().createNamespacedPod({
        namespace,
        body: {
          metadata: {
            name: pod,
            labels: {
              'app.kubernetes.io/name': 'blobcache',
              'app.kubernetes.io/instance': name,
              'app.kubernetes.io/component': 'redis',
              'app.kubernetes.io/managed-by': 'blobcache-operator',
              'blobcache.io/shard': String(shard),
            },
          },
          spec: { containers: [{ name: 'redis', image: 'redis' }] },
        },
      });
      await core().patchNamespacedPodStatus(
        {
          name: pod,
          namespace,
          body: { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    }
  };
  /** What the job controller writes when a Job ends (no controller runs against this API server). */
  const finishJob = async (name: string, outcome: 'Complete' | 'Failed', completions: number) => {
    const now = new Date();
    const condition = (type: string, message: string) => ({
      type,
      status: 'True',
      lastProbeTime: now,
      lastTransitionTime: now,
      reason: outcome === 'Complete' ? 'CompletionsReached' : 'BackoffLimitExceeded',
      message,
    });
    const body =
      outcome === 'Complete'
        ? {
            status: {
              startTime: now,
              completionTime: now,
              succeeded: completions,
              completedIndexes: completions === 1 ? '0' : `0-${completions - 1}`,
              conditions: [
                condition('SuccessCriteriaMet', 'Reached expected number of succeeded pods'),
                condition('Complete', 'Reached expected number of succeeded pods'),
              ],
            },
          }
        : {
            status: {
              startTime: now,
              failed: 3,
              failedIndexes: String(completions - 1),
              conditions: [
                condition('FailureTarget', 'Job has failed indexes'),
                condition('Failed', 'Job has failed indexes'),
              ],
            },
          };
    await batch().patchNamespacedJobStatus(
      { name, namespace, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };
  /** The backfill command run as the Job's pod `partition` would run it. */
  const runPartition = async (job: V1Job, partition: number) => {
    const container = job.spec!.template.spec!.containers[0]!;
    const env = Object.fromEntries(
      (container.env ?? [])
        .filter((variable) => variable.value !== undefined)
        .map((variable) => [variable.name, variable.value!]),
    );
    // The ConfigMap's and Secrets' settings point at Services this machine cannot resolve:
    // the stack's own stand in for them.
    const ran = await runBackfill(stack.env({ ...env, JOB_COMPLETION_INDEX: String(partition) }), [
      '--progress-interval-ms',
      '100',
    ]);
    expect(ran.code, ran.lines.join('\n')).to.equal(0);
  };

  it('makes exactly one Job for a new incarnation, reports its progress and success, and cleans it up', async () => {
    const blobs = Array.from({ length: 12 }, (_, i) => blobOf(100_000 + i * 5_000, 4_000 + i));
    for (const blob of blobs)
      await stack.store.put(Readable.from([blob], { objectMode: false }), { key: md5(blob) });
    await create('cache', {
      http: { image: 'registry.example/blobcache:1.2.3' },
      backfill: { policy: 'OnColdStart', maxBytes: '64Mi', parallelism: 2 },
    });
    await run();
    await redisPods('cache');
    await run();
    // The cluster holds no data set yet: nothing to warm.
    expect(await jobs()).to.deep.equal([]);
    expect(await warm()).to.include({ status: 'False', reason: 'NoDataSet' });

    // Cluster creation writes the incarnation id.
    await stack.cluster.set('bc:incarnation', 'inc-1');
    const result = await run();
    expect(result.requeueAfterMs).to.be.a('number');
    let found = await jobs();
    expect(found.map((job) => job.metadata?.name)).to.deep.equal([
      backfillJobName('cache', 'inc-1'),
    ]);
    const job = found[0]!;
    expect(job.spec).to.deep.include({ completionMode: 'Indexed', completions: 2, parallelism: 2 });
    const container = job.spec!.template.spec!.containers[0]!;
    expect(container.image).to.equal('registry.example/blobcache:1.2.3');
    expect(container.command).to.deep.equal([
      'node',
      '--max-semi-space-size=2',
      'dist/dataplane/src/commands/backfill.js',
    ]);
    expect(container.envFrom).to.deep.equal([{ configMapRef: { name: 'cache-config' } }]);
    expect(
      container.env?.find((variable) => variable.name === 'BLOBCACHE_BACKFILL_MAX_BYTES'),
    ).to.include({ value: String(64 * 1024 * 1024) });
    expect(job.metadata?.ownerReferences?.[0]).to.include({ kind: 'BlobCache', name: 'cache' });
    expect((await status())?.backfill).to.include({
      incarnation: 'inc-1',
      phase: 'Pending',
      job: backfillJobName('cache', 'inc-1'),
    });
    expect(await warm()).to.include({ status: 'False', reason: 'Backfilling' });
    expect(await events('BackfillStarted')).to.have.length(1);

    // Reconciles, and a spec change, never start a second Job for the same data set.
    await run();
    await mergeSpec(objects, namespace, 'cache', { backfill: { maxBytes: '1Gi', parallelism: 4 } });
    await run();
    found = await jobs();
    expect(found).to.have.length(1);
    expect(found[0]!.metadata?.uid).to.equal(job.metadata?.uid);

    // The Job's pods report their progress in Redis; the status shows it.
    await runPartition(job, 0);
    await run();
    let backfill = (await status())?.backfill;
    expect(backfill).to.include({ phase: 'Running', partitionsReporting: 1 });
    await runPartition(job, 1);
    await run();
    backfill = (await status())?.backfill;
    expect(backfill).to.include({
      phase: 'Running',
      partitionsReporting: 2,
      loadedBlobs: blobs.length,
      totalBlobs: blobs.length,
      loadedBytes: blobs.reduce((sum, blob) => sum + blob.length, 0),
      percent: 100,
    });

    await finishJob(job.metadata!.name!, 'Complete', 2);
    await run();
    backfill = (await status())?.backfill;
    expect(backfill).to.include({ phase: 'Succeeded', percent: 100 });
    expect(backfill?.completedAt).to.be.a('string');
    expect(await warm()).to.include({ status: 'True', reason: 'BackfillSucceeded' });
    expect(await events('BackfillSucceeded')).to.have.length(1);
    const second = await run();
    expect(await events('BackfillSucceeded')).to.have.length(1);
    expect(second.requeueAfterMs).to.be.greaterThan(0);

    // Kept a day (ttlSecondsAfterFinished), then removed.
    expect(await jobs()).to.have.length(1);
    clock = new Date(Date.parse(backfill!.completedAt!) + 86_400_000 + 1_000);
    await run();
    expect(await jobs()).to.deep.equal([]);
    await run();
    expect(await jobs()).to.deep.equal([]);
    expect((await status())?.backfill?.phase).to.equal('Succeeded');
  });

  it('shows a failed Job as a condition and a Warning Event, and starts afresh for a wiped cluster', async () => {
    await create('cache', { backfill: { parallelism: 2 } });
    await run();
    await redisPods('cache');
    await stack.cluster.set('bc:incarnation', 'inc-a');
    await run();
    const [job] = await jobs();
    await finishJob(job!.metadata!.name!, 'Failed', 2);
    await run();
    expect((await status())?.backfill?.phase).to.equal('Failed');
    const condition = await warm();
    expect(condition).to.include({ status: 'False', reason: 'BackfillFailed' });
    expect(condition?.message).to.include('Job has failed indexes');
    const warnings = await events('BackfillFailed');
    expect(warnings).to.have.length(1);
    expect(warnings[0]!.type).to.equal('Warning');

    // The cluster wiped whole and created again: a new data set, a new Job (the old one goes).
    await stack.cluster.set('bc:incarnation', 'inc-b');
    await run();
    await run();
    expect((await jobs()).map((found) => found.metadata?.name)).to.deep.equal([
      backfillJobName('cache', 'inc-b'),
    ]);
    expect((await status())?.backfill).to.include({ incarnation: 'inc-b', phase: 'Pending' });
  });

  it('runs a failed backfill again when the rerun annotation asks, counting only that run', async () => {
    const blobs = Array.from({ length: 4 }, (_, i) => blobOf(50_000 + i * 1_000, 4_100 + i));
    for (const blob of blobs)
      await stack.store.put(Readable.from([blob], { objectMode: false }), { key: md5(blob) });
    await create('cache', {
      backfill: { policy: 'OnColdStart', maxBytes: '64Mi', parallelism: 1 },
    });
    await run();
    await redisPods('cache');
    await stack.cluster.set('bc:incarnation', 'inc-r');
    await run();
    const [first] = await jobs();
    expect(first!.metadata?.name).to.equal(backfillJobName('cache', 'inc-r'));
    // Its pod reported (then the Job failed): a report the rerun must not count as its own.
    await runPartition(first!, 0);
    await finishJob(first!.metadata!.name!, 'Failed', 1);
    await run();
    expect((await status())?.backfill?.phase).to.equal('Failed');
    expect(await warm()).to.include({ status: 'False', reason: 'BackfillFailed' });

    // A platform operator asks for another run: kubectl annotate ... blobcache.io/backfill-rerun=...
    await annotate('cache', { 'blobcache.io/backfill-rerun': 'retry-1' });
    await run();
    const rerun = backfillJobName('cache', 'inc-r', 'retry-1');
    expect((await status())?.backfill).to.include({
      incarnation: 'inc-r',
      phase: 'Pending',
      job: rerun,
      rerun: 'retry-1',
    });
    expect((await status())?.backfill?.partitionsReporting).to.equal(undefined);
    expect(await warm()).to.include({ status: 'False', reason: 'Backfilling' });
    const started = await events('BackfillStarted');
    expect(started).to.have.length(2);
    expect(started.map((event) => event.message).join('\n')).to.include(
      'blobcache.io/backfill-rerun=retry-1',
    );
    await run();
    // One Job: the failed one is let go (pruned), the rerun's is there.
    const found = await jobs();
    expect(found.map((job) => job.metadata?.name)).to.deep.equal([rerun]);
    const second = found[0]!;
    expect(second.metadata?.annotations).to.include({ 'blobcache.io/backfill-rerun': 'retry-1' });
    expect((await status())?.backfill?.phase).to.equal('Pending');

    // The rerun's own pod reports: progress, then success.
    await runPartition(second, 0);
    await run();
    expect((await status())?.backfill).to.include({
      phase: 'Running',
      partitionsReporting: 1,
      percent: 100,
    });
    await finishJob(rerun, 'Complete', 1);
    await run();
    expect((await status())?.backfill).to.include({ phase: 'Succeeded', job: rerun });
    expect(await warm()).to.include({ status: 'True', reason: 'BackfillSucceeded' });

    // The same value asks for nothing more.
    await run();
    expect((await jobs()).map((job) => job.metadata?.name)).to.deep.equal([rerun]);
    expect(await events('BackfillStarted')).to.have.length(2);
  });

  it('creates nothing with backfill.policy Never', async () => {
    await create('cache', { backfill: { policy: 'Never' } });
    await run();
    await redisPods('cache');
    await stack.cluster.set('bc:incarnation', 'inc-never');
    await run();
    await run();
    expect(await jobs()).to.deep.equal([]);
    expect((await status())?.backfill).to.include({ incarnation: 'inc-never', phase: 'Skipped' });
    expect(await warm()).to.include({ status: 'Unknown', reason: 'BackfillNever' });
  });
});

/**
 * The whole reconcile (membership included) against real redis-server processes on
 * loopback addresses standing for the Pods: the incarnation is the one membership writes
 * when it creates the cluster, and again when every pod came back empty.
 */
describe('operator backfill: the incarnation cluster creation writes starts the Job (real API server, membership, real Redis)', function () {
  this.timeout(300_000);
  let bed: Testbed;
  let admin: RedisAdmin;
  let redis: LoopbackRedis | undefined;
  let namespace: string;

  before(async function () {
    this.timeout(600_000);
    bed = await startTestbed();
    admin = makeRedisAdmin({ timeoutMs: 3_000 });
  });
  after(async () => {
    await redis?.stop();
    await admin?.close();
    await bed?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(bed.config);
  });

  const core = () => bed.config.makeApiClient(CoreV1Api);
  const batch = () => bed.config.makeApiClient(BatchV1Api);
  const cache = () =>
    bed.objects.read<BlobCache & KubernetesObject>({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'cache', namespace },
    });
  const jobs = async () =>
    (await batch().listNamespacedJob({ namespace })).items.map((job) => job.metadata!.name!);
  const events = async (reason: string) =>
    (await core().listNamespacedEvent({ namespace })).items.filter(
      (event) => event.reason === reason,
    );
  const run = async () => {
    await bed.caughtUp(namespace);
    return reconcile({ kube: bed.kube, redis: admin, logger }, { namespace, name: 'cache' });
  };
  const reconcileUntil = (what: string, done: (cache: BlobCache) => boolean) =>
    reconcileUntilDone(run, cache, what, done);
  /** The Pods of the loopback nodes, as the shard's StatefulSet would make them. */
  const pointPods = async (create: boolean) => {
    for (const pod of redis!.records()) {
      if (create) await createRedisPod(core(), namespace, pod);
      await markRedisPodRunning(core(), namespace, pod);
    }
  };

  it('makes one Job once membership created the cluster, and one more when it comes back empty', async () => {
    await bed.objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'cache', namespace },
      spec: {
        redis: { shards: 1, replicasPerShard: 1 },
        store: { s3: { bucket: 'bkt' } },
        backfill: { parallelism: 3 },
      },
    } as KubernetesObject);
    await run();
    const secret = await core().readNamespacedSecret({ name: 'cache-redis', namespace });
    redis = await LoopbackRedis.create({
      dir: await mkdtemp(join(tmpdir(), 'blobcache-backfill-op-')),
      password: Buffer.from(secret.data!.password!, 'base64').toString('utf8'),
    });
    await redis.addPods(0, 2);
    await pointPods(true);

    await reconcileUntil('the new data set has its backfill', (found) =>
      Boolean(found.status?.backfill?.job),
    );
    const first = (await cache()).status!;
    expect(first.redis?.incarnation).to.match(/^[0-9a-f-]{36}$/);
    expect(first.backfill).to.include({
      incarnation: first.redis!.incarnation,
      phase: 'Pending',
      job: backfillJobName('cache', first.redis!.incarnation!),
    });
    expect(await jobs()).to.deep.equal([first.backfill!.job]);
    const job = await batch().readNamespacedJob({ name: first.backfill!.job!, namespace });
    expect(job.spec).to.deep.include({ completionMode: 'Indexed', completions: 3, parallelism: 3 });
    expect(await events('SetIncarnation')).to.have.length(1);
    expect(await events('BackfillStarted')).to.have.length(1);
    for (let round = 0; round < 3; round++) await run();
    expect(await jobs(), 'reconciles start no second Job').to.deep.equal([first.backfill!.job]);

    // Every pod rescheduled at once, empty: membership creates the cluster again, a new
    // data set; its Job replaces the old one's.
    await redis.replaceAll();
    await pointPods(false);
    await reconcileUntil(
      'the data set made anew has its backfill',
      (found) =>
        found.status?.backfill?.incarnation !== undefined &&
        found.status.backfill.incarnation !== first.backfill!.incarnation,
    );
    const second = (await cache()).status!;
    expect(second.backfill?.incarnation).to.equal(second.redis?.incarnation);
    await run();
    expect(await jobs()).to.deep.equal([backfillJobName('cache', second.redis!.incarnation!)]);
    expect(await events('BackfillStarted')).to.have.length(2);
  });
});
