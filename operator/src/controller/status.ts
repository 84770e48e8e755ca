import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { ConditionType, setCondition, type Condition } from '../api/v1alpha1/conditions.ts';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import type { BlobCacheStatus } from '../api/v1alpha1/types.generated.ts';
import { selectorLabels } from '../resources/labels.ts';
import { names } from '../resources/names.ts';
import type { BackfillReportForStatus } from './context.ts';
import type { MembershipReport } from '../redis/membership.ts';

export interface StatusInputs {
  deployment: V1Deployment | null;
  /** The StatefulSets of the shards the spec asks for, by shard. */
  shards: (V1StatefulSet | null)[];
  /** The multi-step operation under way, as the phases left it. */
  operation?: BlobCacheStatus['operation'];
  /** Secrets the pods consume that do not exist. */
  missingSecrets?: readonly string[];
  /** Why the spec can never work, when it cannot. */
  invalid?: { reason: string; message: string };
  /** What the backfill phase decided (unset: it did not run; the last status stands). */
  backfill?: BackfillReportForStatus;
  /** What the membership phase found (unset: it did not run; the last status stands). */
  membership?: MembershipReport;
}

/** The status a BlobCache should have given what its children and phases report (pure). */
export function computeStatus(
  cache: DefaultedBlobCache,
  inputs: StatusInputs,
  now: Date,
): BlobCacheStatus {
  const { name, namespace, generation } = cache.metadata;
  const { redis, http } = cache.spec;
  const desiredNodes = redis.shards * (1 + redis.replicasPerShard);
  const readyNodes = inputs.shards.reduce((sum, set) => sum + (set?.status?.readyReplicas ?? 0), 0);
  const desiredHttp = inputs.deployment?.spec?.replicas ?? http.replicas;
  const readyHttp = inputs.deployment?.status?.readyReplicas ?? 0;
  const replicasReady = readyNodes >= desiredNodes && readyHttp >= desiredHttp && desiredHttp > 0;
  const partial =
    (readyHttp > 0 && readyHttp < desiredHttp) || (readyNodes > 0 && readyNodes < desiredNodes);
  const summary = `HTTP ${readyHttp}/${desiredHttp} ready, Redis ${readyNodes}/${desiredNodes} ready`;
  const missing = inputs.missingSecrets ?? [];
  let conditions: Condition[] | undefined = cache.status?.conditions;
  const set = (type: string, status: boolean, reason: string, message = summary): void => {
    conditions = setCondition(
      conditions,
      {
        type,
        status: status ? 'True' : 'False',
        reason,
        message,
        observedGeneration: generation,
      },
      now,
    );
  };
  const { invalid, operation } = inputs;
  if (invalid !== undefined) {
    set(ConditionType.Ready, false, invalid.reason, invalid.message);
    set(ConditionType.Progressing, false, invalid.reason, 'Waiting for the spec to be fixed');
  } else if (missing.length > 0) {
    const message = `Secret ${missing.join(', ')} does not exist; the pods cannot start without it`;
    set(ConditionType.Ready, false, 'SecretMissing', message);
    set(ConditionType.Progressing, true, 'SecretMissing', message);
  } else {
    // The cache serves during an operation (a scale-in, say): Ready follows the pods, and
    // Progressing tells what is under way.
    // Pods that run are not a cache that serves: slots without a master answer nothing.
    const uncovered = inputs.membership?.slotsCovered;
    const ready = replicasReady && uncovered?.status !== 'False';
    if (replicasReady && !ready)
      set(ConditionType.Ready, false, 'SlotsNotCovered', uncovered?.message ?? summary);
    else set(ConditionType.Ready, ready, ready ? 'AllReplicasReady' : 'ReplicasNotReady');
    const blocked = inputs.membership?.blocked;
    if (blocked !== undefined)
      set(ConditionType.Progressing, false, blocked.reason, blocked.message);
    else if (operation !== undefined)
      set(ConditionType.Progressing, true, operation.type, operation.message ?? operation.step);
    else set(ConditionType.Progressing, !ready, ready ? 'Stable' : 'RollingOut');
  }
  const { membership } = inputs;
  if (membership !== undefined) {
    for (const [type, verdict] of [
      [ConditionType.SlotsCovered, membership.slotsCovered],
      [ConditionType.ZoneSpread, membership.zoneSpread],
    ] as const) {
      conditions = setCondition(
        conditions,
        { type, ...verdict, observedGeneration: generation },
        now,
      );
    }
  }
  set(ConditionType.Degraded, partial, partial ? 'SomeReplicasNotReady' : 'NotDegraded');
  const warm = inputs.backfill?.warm;
  if (warm !== undefined) {
    conditions = setCondition(
      conditions,
      { type: ConditionType.Warm, ...warm, observedGeneration: generation },
      now,
    );
  }
  const selector = Object.entries(selectorLabels(cache, 'http'))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
  const rest: BlobCacheStatus = { ...cache.status };
  delete rest.operation;
  if (inputs.backfill !== undefined) {
    if (inputs.backfill.status === undefined) delete rest.backfill;
    else rest.backfill = inputs.backfill.status;
  }
  return {
    ...rest,
    observedGeneration: generation,
    url: `http://${names.service(name!)}.${namespace}.svc:${http.port}`,
    conditions,
    redis: redisCounts(cache, readyNodes, desiredNodes, membership),
    http: {
      replicas: inputs.deployment?.status?.replicas ?? 0,
      readyReplicas: readyHttp,
      selector,
    },
    ...(operation === undefined ? {} : { operation }),
  };
}

/** status.redis: node counts, and shard counts and the incarnation once membership ran. */
function redisCounts(
  cache: DefaultedBlobCache,
  readyNodes: number,
  desiredNodes: number,
  membership: MembershipReport | undefined,
): NonNullable<BlobCacheStatus['redis']> {
  const previous = cache.status?.redis ?? {};
  const desiredShards = cache.spec.redis.shards;
  const readyShards = membership?.shardsReady ?? previous.readyShards ?? 0;
  const incarnation = membership?.incarnation ?? previous.incarnation;
  return {
    readyNodes,
    desiredNodes,
    readyShards,
    desiredShards,
    shards: `${readyShards}/${desiredShards}`,
    ...(incarnation === undefined ? {} : { incarnation }),
  };
}

/**
 * A JSON merge patch turning `previous` into `next`: a field `next` no longer has is sent
 * as null (a merge patch leaves absent fields alone), also inside objects both have (a
 * merge patch merges them; e.g. the progress of a backfill that was run again).
 */
export function statusPatch(
  previous: BlobCacheStatus | undefined,
  next: BlobCacheStatus,
): Record<string, unknown> {
  return mergeDiff({ ...previous }, { ...next });
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function mergeDiff(
  previous: Record<string, unknown>,
  next: Record<string, unknown>,
): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const [key, was] of Object.entries(previous)) {
    const now = next[key];
    if (!(key in next)) patch[key] = null;
    else if (isObject(was) && isObject(now)) patch[key] = mergeDiff(was, now);
  }
  return patch;
}
