import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { ConditionType, setCondition, type Condition } from '../api/v1alpha1/conditions.ts';
import type { BlobCache, BlobCacheStatus } from '../api/v1alpha1/types.generated.ts';
import { selectorLabels } from '../resources/labels.ts';
import { names } from '../resources/names.ts';

export interface ObservedChildren {
  deployment: V1Deployment | null;
  shards: (V1StatefulSet | null)[];
}

/** The status a BlobCache should have given what its children report (pure). */
export function computeStatus(
  cache: BlobCache,
  observed: ObservedChildren,
  now: Date,
): BlobCacheStatus {
  const { name, namespace, generation } = cache.metadata;
  const redis = cache.spec.redis ?? {};
  const desiredNodes = (redis.shards ?? 3) * (1 + (redis.replicasPerShard ?? 1));
  const readyNodes = observed.shards.reduce(
    (sum, set) => sum + (set?.status?.readyReplicas ?? 0),
    0,
  );
  const desiredHttp = observed.deployment?.spec?.replicas ?? cache.spec.http?.replicas ?? 2;
  const readyHttp = observed.deployment?.status?.readyReplicas ?? 0;
  const ready = readyNodes >= desiredNodes && readyHttp >= desiredHttp && desiredHttp > 0;
  const partial =
    (readyHttp > 0 && readyHttp < desiredHttp) || (readyNodes > 0 && readyNodes < desiredNodes);
  const summary = `HTTP ${readyHttp}/${desiredHttp} ready, Redis ${readyNodes}/${desiredNodes} ready`;
  let conditions: Condition[] | undefined = cache.status?.conditions;
  const set = (type: string, status: boolean, reason: string): void => {
    conditions = setCondition(
      conditions,
      {
        type,
        status: status ? 'True' : 'False',
        reason,
        message: summary,
        observedGeneration: generation,
      },
      now,
    );
  };
  set(ConditionType.Ready, ready, ready ? 'AllReplicasReady' : 'ReplicasNotReady');
  set(ConditionType.Progressing, !ready, ready ? 'Stable' : 'RollingOut');
  set(ConditionType.Degraded, partial, partial ? 'SomeReplicasNotReady' : 'NotDegraded');
  const port = cache.spec.http?.port ?? 8080;
  const selector = Object.entries(selectorLabels(cache, 'http'))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  return {
    ...cache.status,
    observedGeneration: generation,
    url: `http://${names.service(name!)}.${namespace}.svc:${port}`,
    conditions,
    redis: { readyNodes, desiredNodes },
    http: {
      replicas: observed.deployment?.status?.replicas ?? 0,
      readyReplicas: readyHttp,
      selector,
    },
  };
}
