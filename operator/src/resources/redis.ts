import type {
  V1Affinity,
  V1PodDisruptionBudget,
  V1ResourceRequirements,
  V1Service,
  V1StatefulSet,
  V1TopologySpreadConstraint,
} from '@kubernetes/client-node';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import { clusterNodeArgs, NODE_TIMEOUT_MS } from '../redis/node-settings.ts';
import { metadataFor, selectorLabels, type Component } from './labels.ts';
import { CONFIG_CHECKSUM_ANNOTATION, names, REDIS_BUS_PORT, REDIS_PORT } from './names.ts';

/** `1Gi` → `1gb` (Redis units are binary: kb = 1024 bytes). */
export function redisMemory(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (match === null) throw new Error(`'${quantity}' is not a memory quantity`);
  const unit = { Ki: 'kb', Mi: 'mb', Gi: 'gb', Ti: 'gb' }[match[2] ?? ''] ?? '';
  const value = match[2] === 'Ti' ? Number(match[1]) * 1024 : Number(match[1]);
  return `${value}${unit}`;
}

/** `1Gi` → 1073741824. */
export function memoryBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity);
  if (match === null) throw new Error(`'${quantity}' is not a memory quantity`);
  const exponent = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 }[match[2] ?? ''] ?? 0;
  return Number(match[1]) * 1024 ** exponent;
}

/** Where the Redis image keeps scripts/redis-node/start.sh. */
export const REDIS_NODE_START_SCRIPT = '/usr/local/lib/blobcache/redis-node/start.sh';

/**
 * A Redis pod is ready when it serves the cluster: it sees the cluster as ok (a new, empty
 * node does not), and, as a replica, its link to its master is up (it holds a copy). A
 * StatefulSet rollout waits for that before it restarts the next pod of the shard, and a
 * PodDisruptionBudget counts a replica still copying as unavailable, so neither takes the
 * shard's last copy away while a new pod is still joining.
 */
const LOCAL_REDIS = { host: '127.0.0.1', port: REDIS_PORT };

export function redisReadyCheck(node: { host: string; port: number } = LOCAL_REDIS): string {
  const cli = `redis-cli -h ${node.host} -p ${node.port}`;
  return [
    'export REDISCLI_AUTH="$REDIS_PASSWORD"',
    `cluster=$(${cli} CLUSTER INFO) || exit 1`,
    `replication=$(${cli} INFO replication) || exit 1`,
    'case "$cluster" in *cluster_state:ok*) ;; *) exit 1 ;; esac',
    'case "$replication" in *role:slave*) case "$replication" in *master_link_status:up*) ;; *) exit 1 ;; esac ;; esac',
  ].join('\n');
}

/**
 * Redis settings for blob traffic. Replicas receive every chunk of every upload; under a
 * burst of large uploads (or a replica short of CPU) they fall hundreds of MB behind, and
 * Redis's default replica output buffer limit (256 MB) would then cut them off, forcing a
 * full resync during which WAIT fails and uploads answer 503. Allow half of maxmemory, and
 * a replication backlog that lets a briefly disconnected replica resume without a full sync.
 */
export function redisReplicationArgs(maxMemory: string): string {
  const replicaBuffer = Math.floor(memoryBytes(maxMemory) / 2);
  return `--client-output-buffer-limit replica ${replicaBuffer} 0 0 --repl-backlog-size 64mb`;
}

export function zoneSpread(
  cache: DefaultedBlobCache,
  component: Component,
  shard?: number,
): V1TopologySpreadConstraint[] {
  const { topology } = cache.spec;
  return [
    {
      maxSkew: 1,
      topologyKey: topology.zoneLabelKey,
      whenUnsatisfiable: topology.spread === 'Required' ? 'DoNotSchedule' : 'ScheduleAnyway',
      labelSelector: { matchLabels: selectorLabels(cache, component, shard) },
    },
  ];
}

/**
 * A preference for zones with fewer Redis pods of the cache, whatever their shard
 * (docs/decisions/0060). Spread shard by shard only, every shard could land in the same two
 * zones, leaving a third with no Redis pod and one zone with a majority of the masters,
 * whose loss leaves too few masters to elect replacements. A preference, not a rule: a hard
 * cache-wide spread can leave a shard's last pod no zone both allow. Anti-affinity rather
 * than a second spread constraint: server-side apply keys those by topology key and
 * `whenUnsatisfiable`, so two soft ones on the zone label collide.
 */
export function spreadWithOtherShards(cache: DefaultedBlobCache): V1Affinity {
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            topologyKey: cache.spec.topology.zoneLabelKey,
            labelSelector: { matchLabels: selectorLabels(cache, 'redis') },
          },
        },
      ],
    },
  };
}

/**
 * One StatefulSet per shard (a master and its replicas), so "a master's replicas sit in
 * other zones" is a plain zone spread over the shard's own pods. Redis keeps no data on
 * disk: a restarted pod rejoins empty and S3 is the durable tier; the node start script
 * keeps a master restarted in place from coming back as the empty master of its slots
 * (docs/decisions/0020). `configChecksum` digests the Secret the pods read (see
 * configChecksum), so that changing it rolls them.
 */
export function redisShardStatefulSet(
  cache: DefaultedBlobCache,
  shard: number,
  configChecksum: string,
): V1StatefulSet {
  const { redis } = cache.spec;
  const name = names.redisShard(cache.metadata.name!, shard);
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: metadataFor(cache, name, 'redis', shard),
    spec: {
      serviceName: name,
      replicas: 1 + redis.replicasPerShard,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selectorLabels(cache, 'redis', shard) },
      template: {
        metadata: {
          labels: metadataFor(cache, name, 'redis', shard).labels,
          annotations: { [CONFIG_CHECKSUM_ANNOTATION]: configChecksum },
        },
        spec: {
          topologySpreadConstraints: zoneSpread(cache, 'redis', shard),
          affinity: spreadWithOtherShards(cache),
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 999,
            fsGroup: 999,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'redis',
              image: redis.image,
              // The node start script (scripts/redis-node/start.sh, in the Redis image) adds
              // cluster mode, no persistence and the password, and keeps a master restarted
              // in place from coming back as the empty master of its slots.
              command: ['sh', REDIS_NODE_START_SCRIPT],
              args: [
                '--port',
                String(REDIS_PORT),
                ...clusterNodeArgs(NODE_TIMEOUT_MS),
                // Clients reach a node by its pod's stable DNS name (the headless Service
                // publishes it), not by an IP that changes when the pod moves.
                '--cluster-announce-hostname',
                `$(POD_NAME).${name}.${cache.metadata.namespace}.svc`,
                '--dir',
                '/data',
                '--maxmemory',
                redisMemory(redis.maxMemory),
                '--maxmemory-policy',
                'volatile-lru',
                ...redisReplicationArgs(redis.maxMemory).split(' '),
                '--proto-max-bulk-len',
                '512mb',
              ],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                {
                  name: 'REDIS_PASSWORD',
                  valueFrom: {
                    secretKeyRef: {
                      name: names.redisSecret(cache.metadata.name!),
                      key: 'password',
                    },
                  },
                },
              ],
              ports: [
                { name: 'redis', containerPort: REDIS_PORT },
                { name: 'cluster-bus', containerPort: REDIS_BUS_PORT },
              ],
              readinessProbe: {
                exec: { command: ['sh', '-c', redisReadyCheck()] },
                periodSeconds: 5,
                timeoutSeconds: 3,
              },
              livenessProbe: {
                tcpSocket: { port: 'redis' },
                periodSeconds: 10,
                failureThreshold: 6,
              },
              // The CRD's quantities are int-or-string, as the Pod API's are.
              resources: redis.resources as V1ResourceRequirements | undefined,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      },
    },
  };
}

/** Headless Service of one shard: stable DNS names for its pods (the operator and data plane use them). */
export function redisShardService(cache: DefaultedBlobCache, shard: number): V1Service {
  const name = names.redisShard(cache.metadata.name!, shard);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadataFor(cache, name, 'redis', shard),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(cache, 'redis', shard),
      ports: [
        { name: 'redis', port: REDIS_PORT, targetPort: 'redis' },
        { name: 'cluster-bus', port: REDIS_BUS_PORT, targetPort: 'cluster-bus' },
      ],
    },
  };
}

/**
 * At most one pod of a shard down at a time, so a shard never loses all its nodes to a
 * voluntary disruption. A shard without replicas gets none: any disruption would empty it,
 * and a budget of zero would block node drains forever.
 */
export function redisShardPdb(
  cache: DefaultedBlobCache,
  shard: number,
): V1PodDisruptionBudget | null {
  if (cache.spec.redis.replicasPerShard < 1) return null;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: metadataFor(cache, names.redisShard(cache.metadata.name!, shard), 'redis', shard),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(cache, 'redis', shard) } },
  };
}

/** `host:port` of every Redis pod, as the data plane's startup nodes. */
export function redisNodeAddresses(cache: DefaultedBlobCache): string[] {
  const { name, namespace } = cache.metadata;
  const { redis } = cache.spec;
  const addresses: string[] = [];
  for (let shard = 0; shard < redis.shards; shard++) {
    const service = names.redisShard(name!, shard);
    for (let pod = 0; pod < 1 + redis.replicasPerShard; pod++) {
      addresses.push(`${service}-${pod}.${service}.${namespace}.svc:${REDIS_PORT}`);
    }
  }
  return addresses;
}
