import { expect } from 'chai';
import { computeStatus } from '../../../operator/src/controller/status.ts';
import { desiredChildren } from '../../../operator/src/resources/desired.ts';
import {
  httpConfigMap,
  httpDeployment,
  LOCAL_TIER_DIR,
} from '../../../operator/src/resources/http.ts';
import {
  REDIS_NODE_START_SCRIPT,
  redisMemory,
  redisReplicationArgs,
  redisNodeAddresses,
  redisShardPdb,
  redisShardStatefulSet,
} from '../../../operator/src/resources/redis.ts';
import { blobCache as cache, CHECKSUMS } from './fixtures.ts';

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
      CHECKSUMS.redis,
    ).spec!.template.spec!.containers[0]!.args!.join(' ');
    expect(args).to.contain('--maxmemory 2gb');
    expect(args).to.contain('--client-output-buffer-limit replica 1073741824 0 0');
  });

  it('starts Redis through the node start script, which owns persistence and the password', () => {
    const container = redisShardStatefulSet(cache(), 0, CHECKSUMS.redis).spec!.template.spec!
      .containers[0]!;
    expect(container.command).to.deep.equal(['sh', REDIS_NODE_START_SCRIPT]);
    expect(container.args).to.include.members(['--dir', '/data', '--port', '6379']);
    // Set by the script, so no StatefulSet can turn persistence on or leave a password out.
    expect(container.args!.join(' ')).to.not.match(/--save|--appendonly|--requirepass/);
    expect(container.env?.map((variable) => variable.name)).to.include('REDIS_PASSWORD');
  });

  it('runs every node with the cluster settings membership relies on, announcing its DNS name', () => {
    const container = redisShardStatefulSet(cache(), 1, CHECKSUMS.redis).spec!.template.spec!
      .containers[0]!;
    const args = container.args!.join(' ');
    expect(args).to.contain('--cluster-allow-replica-migration no');
    expect(args).to.contain('--cluster-require-full-coverage no');
    expect(args).to.contain('--cluster-preferred-endpoint-type hostname');
    expect(args).to.contain('--cluster-node-timeout 5000');
    // Kubernetes expands $(POD_NAME) from the pod's own name: the headless Service's record.
    expect(args).to.contain('--cluster-announce-hostname $(POD_NAME).c-redis-1.ns.svc');
    // Ready only once it serves the cluster (what rollouts and budgets wait for).
    expect(container.readinessProbe?.exec?.command?.join(' ')).to.match(
      /cluster_state:ok.*master_link_status:up/s,
    );
    expect(
      container.env?.find((variable) => variable.name === 'POD_NAME')?.valueFrom,
    ).to.deep.equal({
      fieldRef: { fieldPath: 'metadata.name' },
    });
  });

  it("spreads a shard's pods over zones, and prefers zones with fewer of every shard's", () => {
    for (const spread of ['Required', 'Preferred'] as const) {
      const pod = redisShardStatefulSet(cache({ topology: { spread } }), 1, CHECKSUMS.redis).spec!
        .template.spec!;
      expect(
        pod.topologySpreadConstraints!.map((constraint) => [
          constraint.whenUnsatisfiable,
          constraint.labelSelector?.matchLabels?.['blobcache.io/shard'],
        ]),
      ).to.deep.equal([[spread === 'Required' ? 'DoNotSchedule' : 'ScheduleAnyway', '1']]);
      const [preferred, ...others] =
        pod.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution!;
      expect(others).to.deep.equal([]);
      expect(preferred!.podAffinityTerm.topologyKey).to.equal('topology.kubernetes.io/zone');
      expect(preferred!.podAffinityTerm.labelSelector?.matchLabels).to.deep.equal({
        'app.kubernetes.io/name': 'blobcache',
        'app.kubernetes.io/instance': 'c',
        'app.kubernetes.io/component': 'redis',
      });
      expect(
        pod.affinity!.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution,
      ).to.equal(undefined);
    }
  });

  it('builds the same objects for the same BlobCache, in a stable order', () => {
    expect(desiredChildren(cache(), CHECKSUMS)).to.deep.equal(desiredChildren(cache(), CHECKSUMS));
    expect(
      desiredChildren(cache(), CHECKSUMS).map((o) => `${o.kind}/${o.metadata?.name}`),
    ).to.deep.equal([
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

  it('puts the config checksum on both pod templates', () => {
    const annotations = (object: {
      spec?: { template?: { metadata?: { annotations?: object } } };
    }) => object.spec?.template?.metadata?.annotations;
    expect(annotations(httpDeployment(cache(), 'abc'))).to.deep.equal({
      'blobcache.io/config-checksum': 'abc',
    });
    expect(annotations(redisShardStatefulSet(cache(), 1, 'def'))).to.deep.equal({
      'blobcache.io/config-checksum': 'def',
    });
  });

  it('leaves replicas to the autoscaler when autoscaling is on', () => {
    expect(httpDeployment(cache({ http: { replicas: 3 } }), 'x').spec?.replicas).to.equal(3);
    expect(
      httpDeployment(
        cache({ http: { replicas: 3, autoscaling: { minReplicas: 2, maxReplicas: 5 } } }),
        'x',
      ).spec,
    ).to.not.have.property('replicas');
  });

  it('gives the local tier its own emptyDir, limited to localTierSize plus headroom', () => {
    const pod = httpDeployment(cache({ http: { localTierSize: '3Gi' } }), 'x').spec!.template.spec!;
    expect(pod.volumes).to.deep.include({
      name: 'local-tier',
      emptyDir: { sizeLimit: String(3 * 1024 ** 3 + 64 * 1024 ** 2) },
    });
    expect(pod.containers[0]!.volumeMounts).to.deep.include({
      name: 'local-tier',
      mountPath: LOCAL_TIER_DIR,
    });
    expect(httpConfigMap(cache({ http: { localTierSize: '3Gi' } })).data).to.include({
      BLOBCACHE_LOCAL_TIER_BYTES: String(3 * 1024 ** 3),
      BLOBCACHE_LOCAL_TIER_DIR: LOCAL_TIER_DIR,
    });
    // The default, from the CRD: 2Gi.
    expect(httpConfigMap(cache()).data?.BLOBCACHE_LOCAL_TIER_BYTES).to.equal(String(2 * 1024 ** 3));
    // 0 turns it off: no volume, and the data plane keeps no copies.
    const off = cache({ http: { localTierSize: '0' } });
    expect(httpDeployment(off, 'x').spec!.template.spec!.volumes).to.deep.equal([
      { name: 'data', emptyDir: {} },
    ]);
    expect(httpConfigMap(off).data).to.include({ BLOBCACHE_LOCAL_TIER_BYTES: '0' });
    expect(httpConfigMap(off).data).to.not.have.property('BLOBCACHE_LOCAL_TIER_DIR');
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
    const inputs = { deployment: null, shards: [null, null, null] };
    const first = computeStatus(cache(), inputs, new Date('2026-01-01T00:00:00Z'));
    const again = computeStatus(
      { ...cache(), status: first },
      inputs,
      new Date('2026-01-02T00:00:00Z'),
    );
    expect(again).to.deep.equal(first);
    expect(first.observedGeneration).to.equal(3);
  });
});
