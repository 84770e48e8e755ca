import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  API_VERSION,
  KIND,
  type BlobCache,
} from '../../operator/src/api/v1alpha1/types.generated.ts';
import { reconcile } from '../../operator/src/controller/reconcile.ts';
import type { RedisAdmin } from '../../operator/src/redis/admin.ts';
import { OperatorMetrics } from '../../operator/src/metrics.ts';
import { makeRedisAdmin } from '../../operator/src/redis/ioredis-admin.ts';
import { freshNamespace, mergeSpec, startTestbed, type Testbed } from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import { reconcileUntil as reconcileUntilDone } from '../harness/reconcile-until.ts';
import { createRedisPod, markRedisPodRunning } from '../harness/redis-pods.ts';

const ZONES = ['a', 'b', 'c'];

/**
 * The membership phase in the real reconcile against a real kube-apiserver: the Pods and
 * Nodes it reads are objects the test creates (an API server alone runs no pods), their
 * status patched to point at real redis-server processes on loopback addresses.
 */
describe('operator cluster membership against a real kube-apiserver and real Redis', function () {
  this.timeout(300_000);
  let bed: Testbed;
  let namespace: string;
  let redis: LoopbackRedis | undefined;
  let admin: RedisAdmin;
  let metrics: OperatorMetrics;
  /** A per-BlobCache gauge's value for this test's BlobCache. */
  const gauge = async (name: string) => {
    const { values } = await metrics.registry.getSingleMetric(name)!.get();
    return values.find((value) => value.labels.namespace === namespace)?.value;
  };

  before(async function () {
    this.timeout(600_000);
    bed = await startTestbed();
    admin = makeRedisAdmin({ timeoutMs: 3_000 });
    metrics = new OperatorMetrics();
  });
  after(async () => {
    await admin?.close();
    await bed?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(bed.config);
  });
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  const core = () => bed.config.makeApiClient(CoreV1Api);
  const cache = () =>
    bed.objects.read<BlobCache & KubernetesObject>({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'cache', namespace },
    });
  const run = async () => {
    await bed.caughtUp(namespace);
    return reconcile(
      { kube: bed.kube, redis: admin, logger, metrics },
      { namespace, name: 'cache' },
    );
  };
  const reconcileUntil = (what: string, done: (cache: BlobCache) => boolean | Promise<boolean>) =>
    reconcileUntilDone(run, cache, what, done);
  const condition = (cache: BlobCache, type: string) =>
    cache.status?.conditions?.find((candidate) => candidate.type === type);

  /** Node objects in three zones (cluster-scoped: named after the test's namespace). */
  const nodes = async () => {
    for (const zone of ZONES) {
      await core().createNode({
        body: {
          metadata: {
            name: `${namespace}-${zone}`,
            labels: { 'topology.kubernetes.io/zone': zone },
          },
        },
      });
    }
  };
  /** Pods as the shard's StatefulSet would make them, each running on a loopback node. */
  const pods = async (shard: number) => {
    const started = await redis!.addPods(shard, 2);
    for (const pod of started) {
      const nodeName = `${namespace}-${ZONES[(shard + pod.ordinal) % 3]}`;
      await createRedisPod(core(), namespace, pod, { nodeName });
      await markRedisPodRunning(core(), namespace, pod);
    }
  };

  it('forms the cluster of the pods it lists, zones from their nodes, reports it, and prunes a shard only once it left', async () => {
    await nodes();
    await bed.objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'cache', namespace },
      spec: { redis: { shards: 2, replicasPerShard: 1 }, store: { s3: { bucket: 'bkt' } } },
    } as KubernetesObject);
    await run();
    const secret = await core().readNamespacedSecret({ name: 'cache-redis', namespace });
    const password = Buffer.from(secret.data!.password!, 'base64').toString('utf8');
    redis = await LoopbackRedis.create({
      dir: await mkdtemp(join(tmpdir(), 'blobcache-membership-')),
      password,
    });
    await pods(0);
    await pods(1);
    await run();
    expect(
      await gauge('blobcache_operator_slots_uncovered'),
      'not created yet: no outage',
    ).to.equal(0);

    const created = await reconcileUntil(
      'the cluster is formed',
      (current) =>
        condition(current, 'SlotsCovered')?.status === 'True' &&
        current.status?.operation === undefined,
    );
    expect(created).to.include.members(['Create/AssignSlots', 'Create/Replicate']);
    let status = (await cache()).status!;
    expect(condition(await cache(), 'ZoneSpread')).to.include({ status: 'True', reason: 'Spread' });
    expect(status.redis).to.include({ readyShards: 2, desiredShards: 2, shards: '2/2' });
    expect(status.redis?.incarnation).to.match(/^[0-9a-f-]{36}$/);
    expect(await gauge('blobcache_operator_slots_uncovered')).to.equal(0);
    expect(await gauge('blobcache_operator_replicas_in_master_zone')).to.equal(0);
    const table = bed.plane.kubectl('-n', namespace, 'get', 'blobcaches');
    expect(table.stdout).to.match(/cache\s+2\/2\s/);
    const { clean, output } = await redis.check();
    expect(clean, output).to.equal(true);
    const events = await core().listNamespacedEvent({ namespace });
    expect(events.items.map((event) => event.reason)).to.include.members([
      'Meet',
      'AssignSlots',
      'Replicate',
      'SetIncarnation',
    ]);

    // Scale in: the shard's StatefulSet stays until its slots moved and its nodes left.
    await mergeSpec(bed.objects, namespace, 'cache', { redis: { shards: 1 } });
    const shard1 = () =>
      bed.objects
        .read({
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          metadata: { name: 'cache-redis-1', namespace },
        })
        .then(
          () => true,
          () => false,
        );
    let keptWhileServing = false;
    const scaled = await reconcileUntil('shard 1 is pruned', async (current) => {
      const exists = await shard1();
      if (exists && condition(current, 'Progressing')?.reason === 'ScaleIn')
        keptWhileServing = true;
      return !exists;
    });
    expect(keptWhileServing, 'held while its slots moved').to.equal(true);
    expect(scaled).to.include.members(['ScaleIn/MoveSlots', 'ScaleIn/RemoveNodes']);
    status = (await cache()).status!;
    expect(condition(await cache(), 'SlotsCovered')).to.include({ status: 'True' });
    await redis.deleteShard(1);
    for (const ordinal of [0, 1])
      await core().deleteNamespacedPod({ name: `cache-redis-1-${ordinal}`, namespace });
    await reconcileUntil(
      'nothing is under way',
      (current) => current.status?.operation === undefined,
    );
    status = (await cache()).status!;
    expect(status.redis).to.include({ shards: '1/1' });
    const after = await redis.check();
    expect(after.clean, after.output).to.equal(true);
  });
});
