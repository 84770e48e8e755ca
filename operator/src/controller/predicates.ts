import type { KubernetesObject } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { API_VERSION, KIND, type BlobCache } from '../api/v1alpha1/types.generated.ts';
import { TYPES, type ResourceType } from '../kube/access.ts';
import { RERUN_ANNOTATION } from '../resources/backfill-job.ts';
import { consumedSecrets } from '../resources/checksum.ts';

type Loose = KubernetesObject & {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
};

/** The part of an object whose change can change what a reconcile does or reports. */
function relevantPart(type: ResourceType, object: KubernetesObject & Loose): unknown {
  const { metadata = {} } = object;
  switch (type.kind) {
    case TYPES.BlobCache.kind:
      // Status is the operator's own output, and spec changes bump the generation; of the
      // annotations, the one asking for a backfill rerun.
      return [
        metadata.uid,
        metadata.generation,
        metadata.deletionTimestamp,
        metadata.annotations?.[RERUN_ANNOTATION],
      ];
    case TYPES.Pod.kind: {
      const status = object.status as
        | { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] }
        | undefined;
      return [
        metadata.uid,
        metadata.labels,
        metadata.deletionTimestamp,
        object.spec?.nodeName,
        status?.phase,
        status?.podIP,
        status?.conditions?.find((condition) => condition.type === 'Ready')?.status,
      ];
    }
    default: {
      // Everything but bookkeeping and status; of a workload's status, what status reads.
      const meta = Object.fromEntries(
        Object.entries(metadata).filter(
          ([key]) => key !== 'resourceVersion' && key !== 'managedFields',
        ),
      );
      const status = object.status as { replicas?: number; readyReplicas?: number } | undefined;
      const counts =
        type.kind === TYPES.Deployment.kind || type.kind === TYPES.StatefulSet.kind
          ? [status?.replicas, status?.readyReplicas]
          : [];
      return [meta, { ...object, metadata: undefined, status: undefined }, counts];
    }
  }
}

/**
 * A short digest of what matters in an object: a watch event whose object has the same
 * fingerprint as before (a status heartbeat, a resourceVersion bump) reconciles nothing.
 */
export function fingerprint(type: ResourceType, object: KubernetesObject): string {
  return createHash('sha1')
    .update(JSON.stringify(relevantPart(type, object)) ?? '')
    .digest('base64');
}

const keyOf = (namespace: string | undefined, name: string | undefined): string =>
  `${namespace ?? ''}/${name ?? ''}`;

/**
 * The BlobCaches (as reconcile keys) an event about `object` concerns: the object itself,
 * its owner, the instance a Redis pod belongs to, or every BlobCache whose pods consume a
 * Secret (listed from the cache of BlobCaches).
 */
export function keysOf(
  type: ResourceType,
  object: KubernetesObject,
  blobCachesIn: (namespace: string) => BlobCache[],
): string[] {
  const { namespace, name, ownerReferences = [], labels = {} } = object.metadata ?? {};
  if (type.kind === KIND) return [keyOf(namespace, name)];
  if (type.kind === TYPES.Pod.kind) {
    const instance = labels['app.kubernetes.io/instance'];
    return instance === undefined ? [] : [keyOf(namespace, instance)];
  }
  const keys = ownerReferences
    .filter((owner) => owner.kind === KIND && owner.apiVersion === API_VERSION)
    .map((owner) => keyOf(namespace, owner.name));
  if (type.kind === TYPES.Secret.kind && namespace !== undefined) {
    for (const cache of blobCachesIn(namespace)) {
      const consumed = consumedSecrets(cache);
      if ([...consumed.http, ...consumed.redis].includes(name ?? ''))
        keys.push(keyOf(namespace, cache.metadata.name));
    }
  }
  return [...new Set(keys)];
}
