import type { V1Node, V1Pod, V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import { TYPES } from '../../kube/access.ts';
import { reconcileMembership } from '../../redis/membership.ts';
import type { RedisPod } from '../../redis/model.ts';
import { NODE_TIMEOUT_MS } from '../../redis/node-settings.ts';
import { selectorLabels } from '../../resources/labels.ts';
import { names, REDIS_PORT } from '../../resources/names.ts';
import { current, ownedBy, type ReconcileContext } from '../context.ts';
import type { Phase } from './phase.ts';

export const SHARD_LABEL = 'blobcache.io/shard';

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

/** The zone label of each node the given pods run on (read by name, not cached). */
async function zones(ctx: ReconcileContext, pods: readonly V1Pod[]): Promise<Map<string, string>> {
  const key = ctx.blobCache.spec.topology.zoneLabelKey;
  const nodeNames = [...new Set(pods.flatMap((pod) => pod.spec?.nodeName ?? []))];
  const found = new Map<string, string>();
  await Promise.all(
    nodeNames.map(async (name) => {
      const node = await ctx.kube.get<V1Node>({ ...TYPES.Node, name, namespace: '' });
      const zone = node?.metadata?.labels?.[key];
      if (zone !== undefined) found.set(name, zone);
    }),
  );
  return found;
}

/** A pod as the planner sees it: its shard, ordinal, address and zone. */
export function redisPod(pod: V1Pod, zoneOf: ReadonlyMap<string, string>): RedisPod {
  const name = pod.metadata!.name!;
  const container = pod.spec?.containers.find((candidate) => candidate.name === 'redis');
  const port = container?.ports?.find((candidate) => candidate.name === 'redis')?.containerPort;
  const ip = pod.status?.podIP;
  const zone = pod.spec?.nodeName === undefined ? undefined : zoneOf.get(pod.spec.nodeName);
  return {
    name,
    shard: shardOf(pod),
    ordinal: Number(/-(\d+)$/.exec(name)?.[1] ?? 0),
    ...(ip === undefined || ip === '' ? {} : { ip }),
    port: port ?? REDIS_PORT,
    ...(zone === undefined ? {} : { zone }),
    terminating: pod.metadata?.deletionTimestamp !== undefined,
  };
}

/**
 * Redis Cluster membership: each reconcile asks every Redis pod of the cache for its view,
 * plans the one next safe step (create, move slots, heal, fix zones) and carries it out,
 * records the operation under way in status.operation (so a restarted operator resumes
 * it), and keeps a shard scaled away (its StatefulSet, Service and budget) from being
 * pruned until its nodes hold no slot and the rest of the cluster has forgotten them.
 */
export const membershipPhase: Phase = {
  name: 'membership',
  async run(ctx) {
    const { blobCache, status } = ctx;
    const namespace = blobCache.metadata.namespace!;
    const pods = (
      await ctx.kube.list<V1Pod>(TYPES.Pod, namespace, selectorLabels(blobCache, 'redis'))
    ).filter((pod) => Number.isInteger(shardOf(pod)));
    const sets = (
      await ctx.kube.list<V1StatefulSet>(
        TYPES.StatefulSet,
        namespace,
        selectorLabels(blobCache, 'redis'),
      )
    ).filter((set) => ownedBy(set, blobCache.metadata.uid));
    const zoneOf = await zones(ctx, pods);
    const { redis } = blobCache.spec;
    const password = await redisPassword(ctx);
    const outcome = await reconcileMembership(
      ctx.redis,
      {
        spec: {
          shards: redis.shards,
          replicasPerShard: redis.replicasPerShard,
          resharding: redis.resharding,
        },
        pods: pods.map((pod) => redisPod(pod, zoneOf)),
        ...(password === undefined ? {} : { password }),
        nodeTimeoutMs: NODE_TIMEOUT_MS,
        ...(status.operation === undefined ? {} : { recorded: status.operation }),
      },
      { now: () => ctx.now().getTime() },
    );
    if (outcome.operation === undefined) delete status.operation;
    else status.operation = outcome.operation;
    ctx.membership = {
      slotsCovered: outcome.slotsCovered,
      zoneSpread: outcome.zoneSpread,
      shardsReady: outcome.shardsReady,
      // A cluster never created yet is not an outage (Progressing says it is being made).
      slotsUncovered:
        outcome.plan.model.uninitialized && status.redis?.incarnation === undefined
          ? 0
          : outcome.slotsUncovered,
      replicasInMasterZone: outcome.replicasInMasterZone,
      ...(outcome.blocked === undefined ? {} : { blocked: outcome.blocked }),
      ...(outcome.incarnation === undefined ? {} : { incarnation: outcome.incarnation }),
    };
    const leaving = [...new Set(sets.map(shardOf))].filter((shard) => shard >= redis.shards);
    const held = new Map<number, string>();
    for (const shard of leaving) {
      const verdict = outcome.removable(shard);
      if (!verdict.done) held.set(shard, verdict.reason);
    }
    ctx.holds.push((object) => {
      const reason = object.kind === TYPES.Pod.kind ? undefined : held.get(shardOf(object));
      return reason === undefined
        ? undefined
        : `shard ${shardOf(object)} is not drained yet: ${reason}`;
    });
    if (outcome.executed !== undefined)
      ctx.log.info('Took a cluster membership step', {
        step: outcome.executed.kind,
        description: outcome.executed.description,
        ...(outcome.executed.outcome.moved ?? {}),
      });
    for (const event of outcome.events) await ctx.event(event.type, event.reason, event.message);
    if (outcome.error !== undefined && outcome.blocked === undefined) throw outcome.error;
    return { requeueAfterMs: outcome.blocked === undefined ? outcome.requeueAfterMs : 30_000 };
  },
};
