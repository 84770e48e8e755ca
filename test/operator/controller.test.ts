import {
  CoordinationV1Api,
  KubernetesObjectApi,
  V1MicroTime,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, KIND } from '../../operator/src/api/v1alpha1/types.generated.ts';
import { startController, type Controller } from '../../operator/src/controller/controller.ts';
import { electLeader } from '../../operator/src/controller/leader-election.ts';
import { makeKubeClient } from '../../operator/src/kube/client.ts';
import { eventually } from '../harness/eventually.ts';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { freshNamespace, installCrd, kubeConfigFor } from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';

describe('operator controller and leader election against a real kube-apiserver', function () {
  this.timeout(180_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let objects: KubernetesObjectApi;
  let namespace: string;
  let controller: Controller | undefined;

  before(async function () {
    this.timeout(600_000);
    plane = await startControlPlane();
    config = kubeConfigFor(plane);
    objects = KubernetesObjectApi.makeApiClient(config);
    await installCrd(plane);
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

  const createCache = (name: string) =>
    objects.create({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace },
      spec: { store: { s3: { bucket: 'bkt' } } },
    } as KubernetesObject);
  const exists = (apiVersion: string, kind: string, name: string) =>
    objects.read({ apiVersion, kind, metadata: { name, namespace } }).then(
      () => true,
      () => false,
    );

  it('reconciles on watch events: a new BlobCache gets its children, a deleted child comes back', async () => {
    controller = startController({ config, kube: makeKubeClient(config), logger });
    await createCache('watched');
    await eventually('the Deployment', () => exists('apps/v1', 'Deployment', 'watched-http'));
    await objects.delete({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'watched', namespace },
    });
    await eventually('the Service to come back', () => exists('v1', 'Service', 'watched'));
  });

  it('keeps working after the API server restarts', async () => {
    controller = startController({ config, kube: makeKubeClient(config), logger });
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

  it('lets one instance lead; another waits on the Lease and takes over when the first stops', async () => {
    const options = {
      config,
      namespace,
      leaseName: 'lead',
      leaseDurationSeconds: 3,
      renewIntervalMs: 300,
      logger,
    };
    const first = electLeader({ ...options, identity: 'first' });
    await first.acquired;
    const second = electLeader({ ...options, identity: 'second' });
    const tookOver = await Promise.race([
      second.acquired.then(() => true),
      sleep(4_000).then(() => false),
    ]);
    expect(tookOver, 'the second instance must wait while the first renews').to.be.false;
    await first.release();
    await Promise.race([
      second.acquired,
      sleep(10_000).then(() => Promise.reject(new Error('no takeover'))),
    ]);
    const lease = await config
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'lead', namespace });
    expect(lease.spec?.holderIdentity).to.equal('second');
    await second.release();
  });

  it('takes over a Lease whose holder stopped renewing (a crashed instance)', async () => {
    await config.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace,
      body: {
        metadata: { name: 'crashed', namespace },
        spec: {
          holderIdentity: 'ghost',
          leaseDurationSeconds: 2,
          renewTime: new V1MicroTime(Date.now() - 1_000),
          acquireTime: new V1MicroTime(),
        },
      },
    });
    const successor = electLeader({
      config,
      namespace,
      leaseName: 'crashed',
      identity: 'successor',
      leaseDurationSeconds: 2,
      renewIntervalMs: 300,
      logger,
    });
    await Promise.race([
      successor.acquired,
      sleep(10_000).then(() => Promise.reject(new Error('no takeover'))),
    ]);
    const lease = await config
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: 'crashed', namespace });
    expect(lease.spec?.holderIdentity).to.equal('successor');
    expect(lease.spec?.leaseTransitions).to.equal(1);
    await successor.release();
  });
});
