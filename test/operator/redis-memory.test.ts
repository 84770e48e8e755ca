import {
  KubernetesObjectApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { API_VERSION, KIND } from '../../operator/src/api/v1alpha1/types.generated.ts';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { freshNamespace, installCrd, kubeConfigFor, sample } from '../harness/kube.ts';

describe('the API server refuses Redis memory limits without room for replication buffers', function () {
  this.timeout(120_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let objects: KubernetesObjectApi;
  let namespace: string;

  before(async function () {
    this.timeout(600_000);
    plane = await startControlPlane();
    config = kubeConfigFor(plane);
    objects = KubernetesObjectApi.makeApiClient(config);
    await installCrd(plane);
    namespace = await freshNamespace(config);
  });
  after(async () => {
    await plane?.stop();
  });

  let created = 0;
  /** Creates a BlobCache with this `spec.redis`; resolves with the API server's refusal, or null. */
  const tryCreate = async (redis: Record<string, unknown>): Promise<string | null> => {
    created += 1;
    return objects
      .create({
        apiVersion: API_VERSION,
        kind: KIND,
        metadata: { name: `cache-${created}`, namespace },
        spec: { redis, store: { s3: { bucket: 'bkt' } } },
      } as KubernetesObject)
      .then(
        () => null,
        (failure: { code?: number; body?: string }) => {
          expect(failure.code).to.equal(422);
          return (JSON.parse(String(failure.body)) as { message: string }).message;
        },
      );
  };

  it('refuses the limit the production sample used to have (8Gi of data in 10Gi), saying how much is needed', async () => {
    const refusal = await tryCreate({
      maxMemory: '8Gi',
      replicasPerShard: 1,
      resources: { limits: { memory: '10Gi' } },
    });
    expect(refusal).to.match(
      /redis.resources.limits.memory leaves no room for maxMemory plus the output buffers of its 1 replica\(s\).* at least 8Gi × 1.5 \+ 128Mi/,
    );
  });

  it('draws the line at maxMemory × (1 + replicas / 2) + 128Mi, for limits in any unit', async () => {
    // 1Gi with one replica: 1536Mi + 128Mi = 1664Mi.
    expect(await tryCreate({ maxMemory: '1Gi', resources: { limits: { memory: '1664Mi' } } })).to.be
      .null;
    expect(
      await tryCreate({ maxMemory: '1Gi', resources: { limits: { memory: '1663Mi' } } }),
    ).to.match(/at least 1Gi × 1.5 \+ 128Mi/);
    // Two replicas: 2Gi + 128Mi; a limit in plain bytes.
    expect(
      await tryCreate({
        maxMemory: '1Gi',
        replicasPerShard: 2,
        resources: { limits: { memory: 2 * 1024 ** 3 } },
      }),
    ).to.match(/its 2 replica\(s\).*at least 1Gi × 2 \+ 128Mi/);
    expect(
      await tryCreate({
        maxMemory: '1Gi',
        replicasPerShard: 2,
        resources: { limits: { memory: String(2176 * 1024 ** 2) } },
      }),
    ).to.be.null;
  });

  it('leaves a container without a memory limit alone', async () => {
    expect(await tryCreate({ maxMemory: '4Gi', resources: { requests: { cpu: '1' } } })).to.be.null;
    expect(await tryCreate({ maxMemory: '4Gi' })).to.be.null;
  });

  it('accepts both samples as shipped', async () => {
    for (const name of ['minimal', 'production']) {
      const cr = sample(name);
      await objects.create({ ...cr, metadata: { ...cr.metadata, namespace } });
    }
  });
});
