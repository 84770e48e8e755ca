import {
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesObject,
  type V1Deployment,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import {
  API_VERSION,
  KIND,
  type BlobCache,
} from '../../operator/src/api/v1alpha1/types.generated.ts';
import { TerminalError } from '../../operator/src/controller/errors.ts';
import { reconcile } from '../../operator/src/controller/reconcile.ts';
import type { RedisAdmin } from '../../operator/src/redis/admin.ts';
import {
  freshNamespace,
  mergeSpec as patchSpec,
  startTestbed,
  type Testbed,
} from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { noRedis } from './stub-redis.ts';

const CHECKSUM = 'blobcache.io/config-checksum';

describe('operator rollouts, pruning and invalid specs against a real kube-apiserver', function () {
  this.timeout(120_000);
  let bed: Testbed;
  let namespace: string;

  before(async function () {
    this.timeout(600_000);
    bed = await startTestbed();
  });
  after(async () => {
    await bed?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(bed.config);
  });

  const core = () => bed.config.makeApiClient(CoreV1Api);
  const create = (spec: Record<string, unknown>) =>
    bed.objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'cache', namespace },
      spec,
    } as KubernetesObject);
  const mergeSpec = (spec: Record<string, unknown>) =>
    patchSpec(bed.objects, namespace, 'cache', spec);
  const run = async (redis: RedisAdmin = noRedis) => {
    await bed.caughtUp(namespace);
    return reconcile({ kube: bed.kube, redis, logger }, { namespace, name: 'cache' });
  };
  const read = <T extends KubernetesObject>(apiVersion: string, kind: string, name: string) =>
    bed.objects.read<T>({ apiVersion, kind, metadata: { name, namespace } });
  const exists = (apiVersion: string, kind: string, name: string) =>
    read(apiVersion, kind, name).then(
      () => true,
      () => false,
    );
  const templateChecksum = async (kind: 'Deployment' | 'StatefulSet', name: string) => {
    const object = await read<V1Deployment | V1StatefulSet>('apps/v1', kind, name);
    return {
      checksum: object.spec?.template.metadata?.annotations?.[CHECKSUM],
      version: object.metadata?.resourceVersion,
    };
  };
  const replaceSecretData = (name: string, data: Record<string, string>) =>
    core().patchNamespacedSecret(
      { name, namespace, body: { data: null, stringData: data } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

  it('rolls the pods when a setting or a Secret they consume changes, and only then', async () => {
    await core().createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: 's3' },
        stringData: { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b' },
      },
    });
    await create({ store: { s3: { bucket: 'bkt', credentialsSecretName: 's3' } } });
    await run();
    const http1 = await templateChecksum('Deployment', 'cache-http');
    const redis1 = await templateChecksum('StatefulSet', 'cache-redis-0');
    expect(http1.checksum).to.match(/^[0-9a-f]{64}$/);
    expect(redis1.checksum).to.match(/^[0-9a-f]{64}$/);

    await mergeSpec({ durability: 'Sync' }); // a setting the HTTP pods read from the ConfigMap
    await run();
    const http2 = await templateChecksum('Deployment', 'cache-http');
    expect(http2.checksum).to.not.equal(http1.checksum);
    expect(http2.version).to.not.equal(http1.version);
    // The Redis pods read nothing that changed: their StatefulSet is left alone.
    expect(await templateChecksum('StatefulSet', 'cache-redis-0')).to.deep.equal(redis1);

    await replaceSecretData('s3', { AWS_ACCESS_KEY_ID: 'rotated', AWS_SECRET_ACCESS_KEY: 'b' });
    await run();
    const http3 = await templateChecksum('Deployment', 'cache-http');
    expect(http3.checksum).to.not.equal(http2.checksum);

    await replaceSecretData('cache-redis', { password: 'new-password' });
    await run();
    expect((await templateChecksum('StatefulSet', 'cache-redis-0')).checksum).to.not.equal(
      redis1.checksum,
    );
    expect((await templateChecksum('Deployment', 'cache-http')).checksum).to.not.equal(
      http3.checksum,
    );
  });

  it('reports a Secret the pods need that does not exist, and rolls them once it does', async () => {
    await create({ store: { s3: { bucket: 'bkt', credentialsSecretName: 'later' } } });
    await run();
    const cache = await read<BlobCache>(API_VERSION, KIND, 'cache');
    expect(cache.status?.conditions?.find((c) => c.type === 'Ready')).to.include({
      status: 'False',
      reason: 'SecretMissing',
    });
    const before = await templateChecksum('Deployment', 'cache-http');
    await core().createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'later' }, stringData: { AWS_ACCESS_KEY_ID: 'a' } },
    });
    await run();
    expect((await templateChecksum('Deployment', 'cache-http')).checksum).to.not.equal(
      before.checksum,
    );
    const after = await read<BlobCache>(API_VERSION, KIND, 'cache');
    expect(after.status?.conditions?.find((c) => c.type === 'Ready')?.reason).to.not.equal(
      'SecretMissing',
    );
  });

  const shardObjects = async (shard: number) => ({
    statefulSet: await exists('apps/v1', 'StatefulSet', `cache-redis-${shard}`),
    service: await exists('v1', 'Service', `cache-redis-${shard}`),
    budget: await exists('policy/v1', 'PodDisruptionBudget', `cache-redis-${shard}`),
  });
  const all = { statefulSet: true, service: true, budget: true };
  const none = { statefulSet: false, service: false, budget: false };

  it('removes a shard without pods at once, and an autoscaler that was turned off', async () => {
    await create({
      redis: { shards: 2 },
      http: { autoscaling: { minReplicas: 2, maxReplicas: 4 } },
      store: { s3: { bucket: 'bkt' } },
    });
    await run();
    expect(await exists('autoscaling/v2', 'HorizontalPodAutoscaler', 'cache-http')).to.equal(true);
    await mergeSpec({ redis: { shards: 1 }, http: { autoscaling: null } });
    await run();
    expect(await shardObjects(1)).to.deep.equal(none);
    expect(await shardObjects(0)).to.deep.equal(all);
    expect(await exists('autoscaling/v2', 'HorizontalPodAutoscaler', 'cache-http')).to.equal(false);
  });

  const invalidSpecs: [string, Record<string, unknown>, RegExp][] = [
    [
      'a quantity that is not one',
      { http: { resources: { limits: { memory: 'lots' } } } },
      /^spec.http.resources.limits.memory must be a quantity such as 500m, 2 or 512Mi; got "lots"$/,
    ],
    [
      'requests above limits (refused by the API server)',
      { redis: { resources: { limits: { cpu: '1' }, requests: { cpu: '2' } } } },
      /^The API server refused StatefulSet cache-redis-0: .*must be less than or equal to cpu limit/,
    ],
  ];
  for (const [what, spec, message] of invalidSpecs) {
    it(`records ${what} as Ready=False/InvalidSpec with a message to act on`, async () => {
      await create({ ...spec, store: { s3: { bucket: 'bkt' } } });
      const failure = await run().then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).to.be.instanceOf(TerminalError);
      const ready = (await read<BlobCache>(API_VERSION, KIND, 'cache')).status?.conditions?.find(
        (c) => c.type === 'Ready',
      );
      expect(ready).to.include({ status: 'False', reason: 'InvalidSpec' });
      expect(ready?.message).to.match(message);
      const events = await core().listNamespacedEvent({ namespace });
      expect(events.items.filter((event) => event.reason === 'InvalidSpec')).to.have.length(1);
    });
  }
});
