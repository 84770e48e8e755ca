import type { V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { timestamp } from '../../api/v1alpha1/conditions.ts';
import { TYPES } from '../../kube/access.ts';
import type { RedisAdmin } from '../../redis/admin.ts';
import { shardDrained, type NodeReport } from '../../redis/drain.ts';
import { selectorLabels } from '../../resources/labels.ts';
import { names, REDIS_PORT } from '../../resources/names.ts';
import { current, ownedBy, type ReconcileContext } from '../context.ts';
import type { Phase } from './phase.ts';

export const SHARD_LABEL = 'blobcache.io/shard';
/** How often a shard waiting to be drained is checked again (Redis sends no watch events). */
export const DRAIN_POLL_MS = 10_000;

const shardOf = (object: { metadata?: { labels?: Record<string, string> } }): number =>
  Number(object.metadata?.labels?.[SHARD_LABEL] ?? NaN);

async function redisPassword(ctx: ReconcileContext): Promise<string | undefined> {
  const secret = await current<V1Secret>(
    ctx,
    TYPES.Secret,
    names.redisSecret(ctx.blobCache.metadata.name!),
  );
  const encoded = secret?.data?.password;
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

/** Asks every Redis pod of the BlobCache for its view of the cluster. */
async function reports(ctx: ReconcileContext, redis: RedisAdmin): Promise<NodeReport[]> {
  const pods = await ctx.kube.list<V1Pod>(
    TYPES.Pod,
    ctx.blobCache.metadata.namespace!,
    selectorLabels(ctx.blobCache, 'redis'),
  );
  const password = await redisPassword(ctx);
  return Promise.all(
    pods.map(async (pod) => {
      const ip = pod.status?.podIP;
      const started = ip !== undefined && ip !== '';
      return {
        pod: pod.metadata!.name!,
        shard: shardOf(pod),
        started,
        view: started ? await redis.clusterNodes({ host: ip, port: REDIS_PORT, password }) : null,
      };
    }),
  );
}

/**
 * Redis Cluster membership. Today it guards scale-in: a shard the spec no longer asks for
 * keeps its StatefulSet, Service and budget (a hold on the prune phase) until its nodes
 * serve no slot and the rest of the cluster has forgotten them; the operation and what it
 * waits for are kept in status.operation. Creating the cluster, moving slots and healing
 * fill this phase in, through the same RedisAdmin.
 */
export const membershipPhase: Phase = {
  name: 'membership',
  async run(ctx) {
    const { blobCache, status } = ctx;
    const sets = (
      await ctx.kube.list<V1StatefulSet>(
        TYPES.StatefulSet,
        blobCache.metadata.namespace!,
        selectorLabels(blobCache, 'redis'),
      )
    ).filter((set) => ownedBy(set, blobCache.metadata.uid));
    const leaving = [...new Set(sets.map(shardOf))]
      .filter((shard) => shard >= blobCache.spec.redis.shards)
      .sort((a, b) => a - b);
    if (leaving.length === 0) {
      if (status.operation?.type === 'ScaleIn') delete status.operation;
      return {};
    }
    const observed = await reports(ctx, ctx.redis);
    const waiting: { shard: number; reason: string }[] = [];
    for (const shard of leaving) {
      const verdict = shardDrained(shard, observed);
      if (!verdict.drained) waiting.push({ shard, reason: verdict.reason });
    }
    const held = new Set(waiting.map(({ shard }) => shard));
    ctx.holds.push((object) =>
      object.kind !== TYPES.Pod.kind && held.has(shardOf(object))
        ? `shard ${shardOf(object)} is not drained yet`
        : undefined,
    );
    const previous = status.operation?.type === 'ScaleIn' ? status.operation : undefined;
    status.operation = {
      type: 'ScaleIn',
      step: waiting.length > 0 ? 'WaitForDrain' : 'RemoveShards',
      startedAt: previous?.startedAt ?? timestamp(ctx.now()),
      shards: leaving,
      message:
        waiting.length > 0
          ? waiting.map(({ shard, reason }) => `shard ${shard}: ${reason}`).join('; ')
          : `removing shards ${leaving.join(', ')}`,
    };
    return waiting.length > 0 ? { requeueAfterMs: DRAIN_POLL_MS } : {};
  },
};
