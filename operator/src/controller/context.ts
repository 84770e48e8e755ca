import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'winston';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import type { BlobCacheStatus } from '../api/v1alpha1/types.generated.ts';
import type { KubeClient, ObjectRef, TypeRef } from '../kube/client.ts';
import type { RedisAdmin } from '../redis/admin.ts';
import type { MembershipReport } from '../redis/membership.ts';

export interface PhaseResult {
  /** Reconcile again after this long (for what no watch event announces, e.g. Redis state). */
  requeueAfterMs?: number;
}

/** Says why a deletion must wait, or undefined to let it go ahead (see the prune phase). */
export type PruneHold = (object: KubernetesObject) => string | undefined;

/** What one reconcile of one BlobCache shares between its phases. */
export interface ReconcileContext {
  /** The BlobCache, its spec defaulted. */
  readonly blobCache: DefaultedBlobCache;
  /** Reads come from the informers' caches; writes refuse once leadership is lost. */
  readonly kube: KubeClient;
  readonly redis: RedisAdmin;
  readonly log: Logger;
  readonly now: () => Date;
  /**
   * The next status, started from the current one so a phase can resume an operation it
   * recorded; written once, at the end, when it differs.
   */
  readonly status: BlobCacheStatus;
  /** Names of children the spec asks for, as `Kind/name` (what the prune phase keeps). */
  readonly wanted: Set<string>;
  /** Objects as this reconcile wrote or found them: newer than the cache, which lags writes. */
  readonly fresh: Map<string, KubernetesObject>;
  /** Holds on deletions, added by phases that must finish something first. */
  readonly holds: PruneHold[];
  /** Secrets the pods consume that do not exist (the user has to create them). */
  readonly missingSecrets: string[];
  /** What the membership phase found of the Redis Cluster (unset when it did not run). */
  membership?: MembershipReport;
  /** Records an Event about the BlobCache; best effort (a failure is logged, not thrown). */
  event(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export const objectKey = (object: { kind?: string; metadata?: { name?: string } }): string =>
  `${object.kind ?? ''}/${object.metadata?.name ?? ''}`;

/** The freshest view of a child: what this reconcile wrote, else the cache. */
export async function current<T extends KubernetesObject>(
  ctx: ReconcileContext,
  type: TypeRef,
  name: string,
): Promise<T | null> {
  const fresh = ctx.fresh.get(`${type.kind}/${name}`);
  if (fresh !== undefined) return fresh as T;
  const ref: ObjectRef = { ...type, name, namespace: ctx.blobCache.metadata.namespace! };
  return ctx.kube.get<T>(ref);
}

/** True when the BlobCache (this very one, by uid) controls the object. */
export function ownedBy(object: KubernetesObject, uid: string | undefined): boolean {
  return (object.metadata?.ownerReferences ?? []).some(
    (owner) => owner.controller === true && owner.uid === uid,
  );
}
