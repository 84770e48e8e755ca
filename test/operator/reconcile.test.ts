import type { KubernetesObjectApi } from '@kubernetes/client-node';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import {
  API_VERSION,
  KIND,
  PLURAL,
  type BlobCache,
} from '../../operator/src/api/v1alpha1/types.generated.ts';
import { reconcile } from '../../operator/src/controller/reconcile.ts';
import type { KubeClient } from '../../operator/src/kube/client.ts';
import type { ControlPlane } from '../harness/control-plane.ts';
import {
  freshNamespace,
  mergeSpec as patchSpec,
  sample,
  startTestbed,
  type Testbed,
} from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { noRedis } from './stub-redis.ts';

describe('operator reconcile against a real kube-apiserver', function () {
  this.timeout(120_000);
  let bed: Testbed;
  let plane: ControlPlane;
  let config: KubeConfig;
  let kube: KubeClient;
  let objects: KubernetesObjectApi;
  let namespace: string;

  before(async function () {
    this.timeout(600_000);
    bed = await startTestbed();
    ({ plane, config, kube, objects } = bed);
  });
  after(async () => {
    await bed?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(config);
  });

  const create = async (name: string, spec: Record<string, unknown>): Promise<BlobCache> =>
    (await objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace },
      spec,
    } as KubernetesObject)) as BlobCache;
  const mergeSpec = (name: string, spec: Record<string, unknown>) =>
    patchSpec(objects, namespace, name, spec);
  /** One reconcile, once the caches have seen everything (as a watch-triggered one would). */
  const run = async () => {
    await bed.caughtUp(namespace);
    return reconcile({ kube, redis: noRedis, logger }, { namespace, name: 'cache' });
  };
  const read = <T extends KubernetesObject>(apiVersion: string, kind: string, name: string) =>
    objects.read<T>({ apiVersion, kind, metadata: { name, namespace } });
  const childVersions = async (): Promise<Record<string, string>> => {
    const versions: Record<string, string> = {};
    for (const [apiVersion, kind] of [
      ['apps/v1', 'StatefulSet'],
      ['apps/v1', 'Deployment'],
      ['v1', 'Service'],
      ['v1', 'ConfigMap'],
      ['v1', 'Secret'],
      ['policy/v1', 'PodDisruptionBudget'],
      ['autoscaling/v2', 'HorizontalPodAutoscaler'],
    ] as const) {
      const list = await objects.list(apiVersion, kind, namespace);
      for (const item of list.items)
        versions[`${kind}/${item.metadata!.name}`] = item.metadata!.resourceVersion!;
    }
    return versions;
  };

  for (const name of ['minimal', 'production']) {
    it(`creates every child of the ${name} sample with owner references, and a second reconcile changes nothing`, async () => {
      const cr = sample(name);
      const created = await create('cache', cr.spec);
      await run();
      const versions = await childVersions();
      const shards = name === 'minimal' ? 3 : 6;
      const expected = [
        'ConfigMap/cache-config',
        'Deployment/cache-http',
        'Service/cache',
        'PodDisruptionBudget/cache-http',
        'Secret/cache-redis',
        ...Array.from({ length: shards }, (_, i) => [
          `StatefulSet/cache-redis-${i}`,
          `Service/cache-redis-${i}`,
          `PodDisruptionBudget/cache-redis-${i}`,
        ]).flat(),
        ...(name === 'production'
          ? ['HorizontalPodAutoscaler/cache-http']
          : ['Secret/cache-api-tokens']),
      ];
      expect(Object.keys(versions)).to.include.members(expected);
      const deployment = await read<V1Deployment>('apps/v1', 'Deployment', 'cache-http');
      expect(deployment.metadata?.ownerReferences).to.deep.equal([
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: 'cache',
          uid: created.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
      expect(deployment.metadata?.labels).to.include({
        'app.kubernetes.io/instance': 'cache',
        'app.kubernetes.io/component': 'http',
      });
      const redis0 = await read<
        KubernetesObject & {
          spec: {
            replicas: number;
            template: { spec: { topologySpreadConstraints: { whenUnsatisfiable: string }[] } };
          };
        }
      >('apps/v1', 'StatefulSet', 'cache-redis-0');
      expect(redis0.spec.replicas).to.equal(2);
      expect(redis0.spec.template.spec.topologySpreadConstraints[0]?.whenUnsatisfiable).to.equal(
        name === 'production' ? 'DoNotSchedule' : 'ScheduleAnyway',
      );
      const callsBefore = bed.proxy.calls.length;
      await run();
      expect(await childVersions()).to.deep.equal(versions);
      // Reads come from the caches and nothing changed: the second reconcile sends nothing
      // (so certainly no call that fails by design, such as a 409 on an existing Secret).
      const calls = bed.proxy.calls.slice(callsBefore);
      expect(calls.filter((call) => call.status >= 400)).to.deep.equal([]);
      expect(calls.map((call) => `${call.method} ${call.path}`)).to.deep.equal([]);
      const status = (await read<BlobCache>(API_VERSION, KIND, 'cache')).status;
      expect(status?.observedGeneration).to.equal(created.metadata.generation);
      expect(status?.url).to.equal(`http://cache.${namespace}.svc:8080`);
    });
  }

  const bucket = { store: { s3: { bucket: 'bkt' } } };
  const rejections: [string, string, Record<string, unknown>, RegExp][] = [
    [
      'WriteBehind without replicas',
      'cache',
      { redis: { replicasPerShard: 0 }, ...bucket },
      /WriteBehind needs redis.replicasPerShard >= 1/,
    ],
    [
      'Required spread without replicas',
      'cache',
      {
        durability: 'Sync',
        redis: { replicasPerShard: 0 },
        topology: { spread: 'Required' },
        ...bucket,
      },
      /spread Required needs redis.replicasPerShard >= 1/,
    ],
    [
      'autoscaling min above max',
      'cache',
      { http: { autoscaling: { minReplicas: 5, maxReplicas: 2 } }, ...bucket },
      /minReplicas must not exceed/,
    ],
    [
      'an endpoint that is not a URL',
      'cache',
      { store: { s3: { bucket: 'bkt', endpoint: 's3.local' } } },
      /endpoint must start with http/,
    ],
    [
      'an unknown durability',
      'cache',
      { durability: 'Eventually', ...bucket },
      /Unsupported value: "Eventually"/,
    ],
    [
      'a name too long for the names derived from it',
      `c${'x'.repeat(43)}`,
      bucket,
      /metadata.name must be at most 43 characters: the longest derived name/,
    ],
    ['a name with a dot', 'a.b', bucket, /metadata.name in body should match '\^\[a-z\]/],
    ['a name starting with a digit', '1cache', bucket, /metadata.name in body should match/],
  ];
  for (const [what, name, spec, message] of rejections) {
    it(`rejects ${what} with a message a user understands`, async () => {
      const error = await create(name, spec).then(
        () => null,
        (failure: unknown) => failure as { code?: number; body?: string },
      );
      expect(error?.code).to.equal(422);
      // The API server's Status message (the JSON body escapes characters such as '>').
      expect((JSON.parse(String(error?.body)) as { message: string }).message).to.match(message);
    });
  }

  it('accepts the longest name the derived names allow', async () => {
    const longest = `c${'x'.repeat(42)}`;
    await create(longest, bucket);
    await bed.caughtUp(namespace);
    await reconcile({ kube, redis: noRedis, logger }, { namespace, name: longest });
    // The API server took every child, the longest StatefulSet name included.
    const statefulSet = await read<KubernetesObject>(
      'apps/v1',
      'StatefulSet',
      `${longest}-redis-2`,
    );
    expect(statefulSet.metadata?.name).to.have.length(51);
  });

  it('rejects changing the bucket', async () => {
    await create('cache', { store: { s3: { bucket: 'first' } } });
    const error = await mergeSpec('cache', { store: { s3: { bucket: 'second' } } }).then(
      () => null,
      (failure: unknown) => failure as { code?: number; body?: string },
    );
    expect(error?.code).to.equal(422);
    expect(String(error?.body)).to.match(/bucket cannot change/);
  });

  it('follows spec edits, and leaves the replica count to an autoscaler', async () => {
    await create('cache', { http: { replicas: 2 }, store: { s3: { bucket: 'bkt' } } });
    await run();
    const merge = (spec: Record<string, unknown>) => mergeSpec('cache', spec);
    await merge({
      http: {
        replicas: 5,
        image: 'blobcache/blobcache:0.2.0',
        resources: { limits: { memory: '1Gi' } },
      },
    });
    await run();
    const apps = config.makeApiClient(AppsV1Api);
    let deployment = await apps.readNamespacedDeployment({ name: 'cache-http', namespace });
    expect(deployment.spec?.replicas).to.equal(5);
    expect(deployment.spec?.template.spec?.containers[0]?.image).to.equal(
      'blobcache/blobcache:0.2.0',
    );
    expect(deployment.spec?.template.spec?.containers[0]?.resources?.limits).to.deep.equal({
      memory: '1Gi',
    });
    await merge({ http: { autoscaling: { minReplicas: 2, maxReplicas: 10 } } });
    await run();
    // What the HPA controller does: set the scale, as another field manager.
    await apps.patchNamespacedDeploymentScale(
      {
        name: 'cache-http',
        namespace,
        body: { spec: { replicas: 7 } },
        fieldManager: 'horizontal-pod-autoscaler',
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await run();
    await run();
    deployment = await apps.readNamespacedDeployment({ name: 'cache-http', namespace });
    expect(deployment.spec?.replicas).to.equal(7);
  });

  it('shows printer columns and scales the HTTP tier through the scale subresource', async () => {
    await create('cache', { http: { replicas: 2 }, store: { s3: { bucket: 'bkt' } } });
    await run();
    const scaled = plane.kubectl('-n', namespace, 'scale', 'blobcache/cache', '--replicas=4');
    expect(scaled.status, scaled.stderr).to.equal(0);
    await run();
    const deployment = await config
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: 'cache-http', namespace });
    expect(deployment.spec?.replicas).to.equal(4);
    // Server-side apply really was used, under the operator's one field manager.
    expect(
      deployment.metadata?.managedFields?.some(
        (f) => f.manager === 'blobcache-operator' && f.operation === 'Apply',
      ),
    ).to.be.true;
    const table = plane.kubectl('-n', namespace, 'get', 'blobcaches');
    expect(table.stdout.split('\n')[0]).to.match(
      /NAME\s+SHARDS\s+HTTP-READY\s+HTTP-DESIRED\s+DURABILITY\s+READY\s+AGE/,
    );
    expect(table.stdout).to.match(/cache\s+0\/3\s+0\s+4\s+WriteBehind\s+False/);
  });

  it('documents the API for kubectl explain', () => {
    const explained = plane.kubectl('explain', 'blobcache.spec.redis.replicasPerShard');
    expect(explained.status, explained.stderr).to.equal(0);
    expect(explained.stdout).to.contain(
      'Replicas of each master, placed in other zones than their master',
    );
  });

  it('records Events for notable steps', async () => {
    await create('cache', { store: { s3: { bucket: 'bkt' } } });
    await run();
    const events = await config.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace });
    const reasons = events.items
      .filter(
        (event) => event.involvedObject.kind === KIND && event.involvedObject.name === 'cache',
      )
      .map((event) => event.reason);
    expect(reasons).to.include('CreatedSecret');
  });

  it('brings back a deleted child', async () => {
    await create('cache', { store: { s3: { bucket: 'bkt' } } });
    await run();
    await objects.delete({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'cache', namespace },
    });
    await run();
    const service = await config
      .makeApiClient(CoreV1Api)
      .readNamespacedService({ name: 'cache', namespace });
    expect(service.spec?.ports?.[0]?.port).to.equal(8080);
  });

  it('sets Ready, Progressing and Degraded from what the children report', async () => {
    await create('cache', {
      redis: { shards: 1, replicasPerShard: 1 },
      http: { replicas: 2 },
      store: { s3: { bucket: 'bkt' } },
    });
    await run();
    const custom = config.makeApiClient(CustomObjectsApi);
    const conditions = async () =>
      Object.fromEntries(
        (
          (
            (await custom.getNamespacedCustomObject({
              group: 'blobcache.io',
              version: 'v1alpha1',
              namespace,
              plural: PLURAL,
              name: 'cache',
            })) as BlobCache
          ).status?.conditions ?? []
        ).map((c) => [c.type, c.status]),
      );
    expect(await conditions()).to.include({
      Ready: 'False',
      Progressing: 'True',
      Degraded: 'False',
    });
    const apps = config.makeApiClient(AppsV1Api);
    const setStatus = async (kind: 'deployment' | 'statefulset', name: string, ready: number) => {
      const body = { status: { replicas: 2, readyReplicas: ready, availableReplicas: ready } };
      const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
      if (kind === 'deployment')
        await apps.patchNamespacedDeploymentStatus({ name, namespace, body }, options);
      else await apps.patchNamespacedStatefulSetStatus({ name, namespace, body }, options);
    };
    await setStatus('deployment', 'cache-http', 1);
    await setStatus('statefulset', 'cache-redis-0', 2);
    await run();
    expect(await conditions()).to.include({ Ready: 'False', Degraded: 'True' });
    await setStatus('deployment', 'cache-http', 2);
    await run();
    expect(await conditions()).to.include({
      Ready: 'True',
      Progressing: 'False',
      Degraded: 'False',
    });
  });
});
