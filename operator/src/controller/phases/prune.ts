import type { KubernetesObject } from '@kubernetes/client-node';
import { CREATED_ONCE, MANAGED_BY, MANAGED_BY_LABEL, OWNED, TYPES } from '../../kube/access.ts';
import { objectKey, ownedBy, type ReconcileContext } from '../context.ts';
import type { Phase } from './phase.ts';

/** Everything of the given kinds this BlobCache owns (found by label, checked by owner). */
export async function ownedObjects(ctx: ReconcileContext): Promise<KubernetesObject[]> {
  const { name, namespace, uid } = ctx.blobCache.metadata;
  const labels = { [MANAGED_BY_LABEL]: MANAGED_BY, 'app.kubernetes.io/instance': name! };
  const lists = await Promise.all(
    [...OWNED, ...CREATED_ONCE, TYPES.Secret].map(async (type) =>
      (await ctx.kube.list(type, namespace!, labels)).map((object) => ({
        ...object,
        apiVersion: type.apiVersion,
        kind: type.kind,
      })),
    ),
  );
  return lists.flat().filter((object) => ownedBy(object, uid));
}

/**
 * Deletes owned objects the spec no longer asks for (a shard scaled away, an autoscaler
 * turned off, a generated Secret replaced by the user's, a backfill Job finished a while
 * ago or of an older Redis data set), unless a phase holds the
 * deletion back until it is safe (see ReconcileContext.holds).
 */
export const prunePhase: Phase = {
  name: 'prune',
  async run(ctx) {
    for (const object of await ownedObjects(ctx)) {
      const key = objectKey(object);
      if (ctx.wanted.has(key)) continue;
      const hold = ctx.holds.map((check) => check(object)).find((reason) => reason !== undefined);
      if (hold !== undefined) {
        ctx.log.debug('Kept an object the spec no longer asks for', { object: key, reason: hold });
        continue;
      }
      const deleted = await ctx.kube.delete(
        {
          apiVersion: object.apiVersion!,
          kind: object.kind!,
          name: object.metadata!.name!,
          namespace: object.metadata!.namespace!,
        },
        { uid: object.metadata!.uid! },
      );
      if (deleted) {
        ctx.log.info('Deleted an object the spec no longer asks for', { object: key });
        await ctx.event('Normal', 'Pruned', `Deleted ${key}: the spec no longer asks for it`);
      }
    }
    return {};
  },
};
