import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { Writable } from 'node:stream';
import winston from 'winston';
import {
  API_VERSION,
  KIND,
  type BlobCache,
} from '../../operator/src/api/v1alpha1/types.generated.ts';
import { startController, type Controller } from '../../operator/src/controller/controller.ts';
import { createLeaderElector } from '../../operator/src/controller/leader-election.ts';
import { rbacRules } from '../../operator/src/kube/access.ts';
import { makeKubeClient } from '../../operator/src/kube/client.ts';
import { OperatorMetrics } from '../../operator/src/metrics.ts';
import type { ControlPlane } from '../harness/control-plane.ts';
import { eventually } from '../harness/eventually.ts';
import {
  cacheCaughtUp,
  createBlobCache,
  freshNamespace,
  kubeConfigFor,
  mergeSpec,
  objectExists,
  startControlPlaneWithCrd,
} from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { noRedis } from './stub-redis.ts';

/** Reconciles so far with this result, from the controller's own metrics. */
async function reconciles(metrics: OperatorMetrics, result: string): Promise<number> {
  const { values } = await metrics.reconciles.get();
  return values.find((value) => value.labels.result === result)?.value ?? 0;
}

describe('operator controller against a real kube-apiserver', function () {
  this.timeout(180_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let objects: KubernetesObjectApi;
  let namespace: string;
  let controller: Controller | undefined;

  before(async function () {
    this.timeout(600_000);
    ({ plane, config } = await startControlPlaneWithCrd());
    objects = KubernetesObjectApi.makeApiClient(config);
  });
  after(async () => {
    await plane?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(config);
  });
  afterEach(async () => {
    await controller?.stop();
    controller = undefined;
  });

  const start = async (metrics?: OperatorMetrics): Promise<Controller> => {
    controller = startController({
      config,
      kube: makeKubeClient(config),
      redis: noRedis,
      logger,
      metrics,
      retry: { baseDelayMs: 50, maxDelayMs: 1_000 },
    });
    await controller.started;
    return controller;
  };
  const createCache = (name: string, spec: Record<string, unknown> = {}) =>
    createBlobCache(config, namespace, name, spec);
  const exists = (apiVersion: string, kind: string, name: string) =>
    objectExists(config, { apiVersion, kind, name, namespace });
  const readCache = (name: string) =>
    objects.read<BlobCache>({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace },
    } as never);

  it('reconciles on watch events: a new BlobCache gets its children, a deleted child comes back', async () => {
    const ctl = await start();
    await createCache('watched');
    await eventually('the Deployment', () => exists('apps/v1', 'Deployment', 'watched-http'));
    await objects.delete({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'watched', namespace },
    });
    await eventually('the Service to come back', () => exists('v1', 'Service', 'watched'));
    // A deleted BlobCache is let go: no periodic reconcile stays armed for it.
    expect(ctl.dueIn(`${namespace}/watched`)).to.be.a('number');
    await objects.delete({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'watched', namespace },
    });
    await eventually('the key to be forgotten', () =>
      Promise.resolve(ctl.pending() === 0 && ctl.dueIn(`${namespace}/watched`) === undefined),
    );
  });

  it('keeps working after the API server restarts', async () => {
    await start();
    await createCache('before');
    await eventually('the first Deployment', () => exists('apps/v1', 'Deployment', 'before-http'));
    await plane.restartApiServer();
    await createCache('after');
    await eventually(
      'a Deployment for a BlobCache made after the restart',
      () => exists('apps/v1', 'Deployment', 'after-http'),
      { timeoutMs: 90_000 },
    );
  });

  it('does not retry a spec that cannot work, and takes it up again once it is fixed', async () => {
    const metrics = new OperatorMetrics();
    const ctl = await start(metrics);
    await createCache('broken', { http: { resources: { limits: { memory: 'lots' } } } });
    await eventually('Ready=False/InvalidSpec', async () => {
      const ready = (await readCache('broken')).status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.reason === 'InvalidSpec';
    });
    // A retry loop would be armed on a timer (50 ms, then 100, 200, ...): none is.
    await eventually('the reconcile to finish', () => Promise.resolve(ctl.pending() === 0));
    expect(ctl.dueIn(`${namespace}/broken`)).to.equal(undefined);
    expect(await reconciles(metrics, 'terminal')).to.equal(1);
    // The controller goes on with other work meanwhile, and the broken one stays quiet.
    await createCache('healthy');
    await eventually('the healthy one to be reconciled', () =>
      exists('apps/v1', 'Deployment', 'healthy-http'),
    );
    await eventually('the queue to drain', () => Promise.resolve(ctl.pending() === 0));
    expect(await reconciles(metrics, 'terminal')).to.equal(1);
    expect(await reconciles(metrics, 'error')).to.equal(0);
    await mergeSpec(objects, namespace, 'broken', { http: { resources: null } });
    await eventually('the fixed spec to be reconciled', () =>
      exists('apps/v1', 'Deployment', 'broken-http'),
    );
    await eventually('Ready to leave InvalidSpec', async () => {
      const ready = (await readCache('broken')).status?.conditions?.find((c) => c.type === 'Ready');
      return ready !== undefined && ready.reason !== 'InvalidSpec';
    });
  });

  it("reconciles on a child's status change only when it can change the BlobCache's status", async () => {
    const metrics = new OperatorMetrics();
    const ctl = await start(metrics);
    await createCache('quiet', { redis: { shards: 1 } });
    await eventually('the Deployment', () => exists('apps/v1', 'Deployment', 'quiet-http'));
    await cacheCaughtUp(config, ctl.cache, namespace);
    await eventually('the controller to go idle', () => Promise.resolve(ctl.pending() === 0));
    const before = await reconciles(metrics, 'success');
    const apps = config.makeApiClient(AppsV1Api);
    const patchStatus = (status: object) =>
      apps.patchNamespacedDeploymentStatus(
        { name: 'quiet-http', namespace, body: { status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    // What the deployment controller writes all the time without anything ready changing.
    await patchStatus({
      observedGeneration: 1,
      conditions: [{ type: 'Progressing', status: 'True' }],
    });
    await cacheCaughtUp(config, ctl.cache, namespace);
    // The event was handled (the cache has it) and enqueued nothing.
    expect(ctl.pending()).to.equal(0);
    expect(await reconciles(metrics, 'success')).to.equal(before);
    await patchStatus({ replicas: 2, readyReplicas: 1 });
    await eventually('a reconcile for the ready count', async () =>
      (await reconciles(metrics, 'success')) > before ? true : null,
    );
    await eventually('the status to show it', async () =>
      (await readCache('quiet')).status?.http?.readyReplicas === 1 ? true : null,
    );
  });

  it('needs nothing beyond the RBAC rules access.ts lists', async () => {
    const home = await freshNamespace(config, 'op');
    const { cluster, ownNamespace } = rbacRules();
    const rbac = config.makeApiClient(RbacAuthorizationV1Api);
    const user = 'blobcache-operator';
    const role = `blobcache-operator-${namespace}`;
    await rbac.createClusterRole({ body: { metadata: { name: role }, rules: cluster } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: role },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    await rbac.createNamespacedRole({
      namespace: home,
      body: { metadata: { name: 'leader-election' }, rules: ownNamespace },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: home,
      body: {
        metadata: { name: 'leader-election' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'leader-election' },
        subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    const restricted = kubeConfigFor(plane, { user: plane.clientCertificate(user) });
    // The rules are really in force: the user cannot read what the operator never reads.
    const denied = await restricted
      .makeApiClient(CoreV1Api)
      .listNode()
      .then(
        () => 0,
        (error: { code?: number }) => error.code,
      );
    expect(denied).to.equal(403);

    const warnings: string[] = [];
    const recorder = winston.createLogger({
      level: 'warn',
      format: winston.format.json(),
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(line: Buffer, _encoding, done) {
              warnings.push(line.toString());
              done();
            },
          }),
        }),
      ],
    });
    const elector = createLeaderElector({
      leases: restricted.makeApiClient(CoordinationV1Api),
      namespace: home,
      leaseName: 'blobcache-operator',
      identity: 'restricted',
      leaseDurationSeconds: 15,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 500,
      logger: recorder,
    });
    let ctl: Controller | undefined;
    elector.run({
      onStartedLeading: () => {
        ctl = startController({
          config: restricted,
          kube: makeKubeClient(restricted),
          redis: noRedis,
          logger: recorder,
          isLeader: () => elector.isLeader(),
        });
      },
      onStoppedLeading: () => ctl?.stop(),
    });
    try {
      await createCache('guarded', {
        redis: { shards: 2 },
        http: { autoscaling: { minReplicas: 2, maxReplicas: 3 } },
      });
      await eventually('the Deployment', () => exists('apps/v1', 'Deployment', 'guarded-http'));
      await eventually('the status', async () =>
        (await readCache('guarded')).status?.observedGeneration === 1 ? true : null,
      );
      // Pruning needs delete: scale in and turn the autoscaler off.
      await mergeSpec(objects, namespace, 'guarded', {
        redis: { shards: 1 },
        http: { autoscaling: null },
      });
      await eventually(
        'the shard and the autoscaler to be pruned',
        async () =>
          !(await exists('apps/v1', 'StatefulSet', 'guarded-redis-1')) &&
          !(await exists('autoscaling/v2', 'HorizontalPodAutoscaler', 'guarded-http')),
      );
      const events = await config.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace });
      expect(events.items.map((event) => event.reason)).to.include('Pruned');
      expect(warnings.filter((line) => /forbidden|403/i.test(line))).to.deep.equal([]);
      const lease = await config
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ name: 'blobcache-operator', namespace: home });
      expect(lease.spec?.holderIdentity).to.equal('restricted');
    } finally {
      await ctl?.stop();
      await elector.stop();
    }
  });
});
