import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { fingerprint, keysOf } from '../../../operator/src/controller/predicates.ts';
import { TYPES } from '../../../operator/src/kube/access.ts';
import { blobCache } from './fixtures.ts';

const owner = { apiVersion: 'blobcache.io/v1alpha1', kind: 'BlobCache', name: 'c', uid: 'u-1' };
const deployment = (status: object, extra: object = {}): KubernetesObject =>
  ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'c-http',
      namespace: 'ns',
      uid: 'd-1',
      generation: 1,
      resourceVersion: '5',
      ownerReferences: [owner],
    },
    spec: { replicas: 2 },
    status,
    ...extra,
  }) as KubernetesObject;

describe('watch predicates', () => {
  it("ignore a child's status changes that cannot change the BlobCache's status", () => {
    const before = deployment({ replicas: 2, readyReplicas: 1, observedGeneration: 1 });
    const heartbeat = deployment({
      replicas: 2,
      readyReplicas: 1,
      observedGeneration: 2,
      conditions: [{ type: 'Available' }],
    });
    heartbeat.metadata!.resourceVersion = '6';
    heartbeat.metadata!.managedFields = [{ manager: 'kube-controller-manager' }];
    expect(fingerprint(TYPES.Deployment, heartbeat)).to.equal(
      fingerprint(TYPES.Deployment, before),
    );
    const ready = deployment({ replicas: 2, readyReplicas: 2 });
    expect(fingerprint(TYPES.Deployment, ready)).to.not.equal(
      fingerprint(TYPES.Deployment, before),
    );
    const edited = deployment({ replicas: 2, readyReplicas: 1 }, { spec: { replicas: 3 } });
    expect(fingerprint(TYPES.Deployment, edited)).to.not.equal(
      fingerprint(TYPES.Deployment, before),
    );
  });

  it('react to a BlobCache spec change (generation), not to its status', () => {
    const cache = blobCache();
    const withStatus = { ...cache, status: { observedGeneration: 3 } };
    expect(fingerprint(TYPES.BlobCache, withStatus)).to.equal(fingerprint(TYPES.BlobCache, cache));
    const edited = { ...cache, metadata: { ...cache.metadata, generation: 4 } };
    expect(fingerprint(TYPES.BlobCache, edited)).to.not.equal(fingerprint(TYPES.BlobCache, cache));
  });

  it('react to a backfill rerun asked for on a BlobCache, not to other annotations', () => {
    const cache = blobCache();
    const annotated = (annotations: Record<string, string>) => ({
      ...cache,
      metadata: { ...cache.metadata, annotations },
    });
    expect(fingerprint(TYPES.BlobCache, annotated({ 'team.example/owner': 'x' }))).to.equal(
      fingerprint(TYPES.BlobCache, cache),
    );
    const asked = annotated({ 'blobcache.io/backfill-rerun': '1' });
    expect(fingerprint(TYPES.BlobCache, asked)).to.not.equal(fingerprint(TYPES.BlobCache, cache));
    expect(
      fingerprint(TYPES.BlobCache, annotated({ 'blobcache.io/backfill-rerun': '2' })),
    ).to.not.equal(fingerprint(TYPES.BlobCache, asked));
  });

  it('map events to the BlobCaches they concern', () => {
    const caches = [
      blobCache(),
      blobCache({ store: { s3: { bucket: 'b', credentialsSecretName: 's3' } } }, 'd'),
    ];
    const inNs = (namespace: string) => (namespace === 'ns' ? caches : []);
    expect(keysOf(TYPES.Deployment, deployment({}), inNs)).to.deep.equal(['ns/c']);
    const secret = (name: string): KubernetesObject => ({
      kind: 'Secret',
      metadata: { name, namespace: 'ns' },
    });
    expect(keysOf(TYPES.Secret, secret('s3'), inNs)).to.deep.equal(['ns/d']);
    expect(keysOf(TYPES.Secret, secret('c-redis'), inNs)).to.deep.equal(['ns/c']);
    expect(keysOf(TYPES.Secret, secret('unrelated'), inNs)).to.deep.equal([]);
    const pod: KubernetesObject = {
      kind: 'Pod',
      metadata: {
        name: 'c-redis-0-0',
        namespace: 'ns',
        labels: { 'app.kubernetes.io/instance': 'c' },
      },
    };
    expect(keysOf(TYPES.Pod, pod, inNs)).to.deep.equal(['ns/c']);
  });
});
