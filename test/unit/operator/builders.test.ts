import { expect } from 'chai';
import type { BlobCache } from '../../../operator/src/api/v1alpha1/types.generated.ts';
import { computeStatus } from '../../../operator/src/controller/status.ts';
import { desiredChildren } from '../../../operator/src/resources/desired.ts';
import { httpDeployment } from '../../../operator/src/resources/http.ts';
import {
  redisMemory,
  redisReplicationArgs,
  redisNodeAddresses,
  redisShardPdb,
  redisShardStatefulSet,
} from '../../../operator/src/resources/redis.ts';

const cache = (spec: Partial<BlobCache['spec']> = {}): BlobCache => ({
  apiVersion: 'blobcache.io/v1alpha1',
  kind: 'BlobCache',
  metadata: { name: 'c', namespace: 'ns', uid: 'u-1', generation: 3 },
  spec: { store: { s3: { bucket: 'b' } }, ...spec },
});

describe('operator builders (pure)', () => {
  it('converts memory quantities to Redis units', () => {
    expect(['512Mi', '2Gi', '1Ti', '100'].map(redisMemory)).to.deep.equal([
      '512mb',
      '2gb',
      '1024gb',
      '100',
    ]);
    expect(() => redisMemory('2GB')).to.throw(/not a memory quantity/);
  });

  it('lets replicas fall half of maxmemory behind before Redis cuts them off', () => {
    expect(redisReplicationArgs('2Gi')).to.equal(
      '--client-output-buffer-limit replica 1073741824 0 0 --repl-backlog-size 64mb',
    );
    const args = redisShardStatefulSet(
      cache({ redis: { maxMemory: '2Gi' } }),
      0,
    ).spec!.template.spec!.containers[0]!.args!.join(' ');
    expect(args).to.contain('--maxmemory 2gb');
    expect(args).to.contain('--client-output-buffer-limit replica 1073741824 0 0');
  });

  it('builds the same objects for the same BlobCache, in a stable order', () => {
    expect(desiredChildren(cache())).to.deep.equal(desiredChildren(cache()));
    expect(desiredChildren(cache()).map((o) => `${o.kind}/${o.metadata?.name}`)).to.deep.equal([
      'ConfigMap/c-config',
      'Service/c-redis-0',
      'StatefulSet/c-redis-0',
      'PodDisruptionBudget/c-redis-0',
      'Service/c-redis-1',
      'StatefulSet/c-redis-1',
      'PodDisruptionBudget/c-redis-1',
      'Service/c-redis-2',
      'StatefulSet/c-redis-2',
      'PodDisruptionBudget/c-redis-2',
      'Service/c',
      'Deployment/c-http',
      'PodDisruptionBudget/c-http',
    ]);
  });

  it('leaves replicas to the autoscaler when autoscaling is on', () => {
    expect(httpDeployment(cache({ http: { replicas: 3 } })).spec?.replicas).to.equal(3);
    expect(
      httpDeployment(
        cache({ http: { replicas: 3, autoscaling: { minReplicas: 2, maxReplicas: 5 } } }),
      ).spec,
    ).to.not.have.property('replicas');
  });

  it('gives shards without replicas no disruption budget', () => {
    expect(
      redisShardPdb(cache({ redis: { replicasPerShard: 0 }, durability: 'Sync' }), 0),
    ).to.equal(null);
    expect(redisShardPdb(cache(), 0)?.spec?.maxUnavailable).to.equal(1);
  });

  it('lists every Redis pod as a startup node', () => {
    expect(redisNodeAddresses(cache({ redis: { shards: 2, replicasPerShard: 1 } }))).to.deep.equal([
      'c-redis-0-0.c-redis-0.ns.svc:6379',
      'c-redis-0-1.c-redis-0.ns.svc:6379',
      'c-redis-1-0.c-redis-1.ns.svc:6379',
      'c-redis-1-1.c-redis-1.ns.svc:6379',
    ]);
  });

  it('keeps lastTransitionTime while a condition holds', () => {
    const first = computeStatus(
      cache(),
      { deployment: null, shards: [null, null, null] },
      new Date('2026-01-01T00:00:00Z'),
    );
    const again = computeStatus(
      { ...cache(), status: first },
      { deployment: null, shards: [null, null, null] },
      new Date('2026-01-02T00:00:00Z'),
    );
    expect(again).to.deep.equal(first);
    expect(first.observedGeneration).to.equal(3);
  });
});
