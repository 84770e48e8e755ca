import type { V1Job, V1Pod, V1Secret } from '@kubernetes/client-node';
import { TYPES } from '../../kube/access.ts';
import type { RedisEndpoint } from '../../redis/admin.ts';
import { readBackfillState } from '../../redis/backfill-state.ts';
import { backfillJob } from '../../resources/backfill-job.ts';
import { selectorLabels } from '../../resources/labels.ts';
import { names } from '../../resources/names.ts';
import { decideBackfill } from '../backfill.ts';
import { current, objectKey, type ReconcileContext } from '../context.ts';
import { redisPod } from './membership.ts';
import type { Phase } from './phase.ts';

/** The Redis pods of the BlobCache that have an address (as membership sees them), with the cluster's password. */
async function redisNodes(ctx: ReconcileContext): Promise<RedisEndpoint[]> {
  const { namespace, name } = ctx.blobCache.metadata;
  const pods = await ctx.kube.list<V1Pod>(
    TYPES.Pod,
    namespace!,
    selectorLabels(ctx.blobCache, 'redis'),
  );
  const secret = await current<V1Secret>(ctx, TYPES.Secret, names.redisSecret(name!));
  const encoded = secret?.data?.password;
  const password = encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString();
  return pods
    .map((pod) => redisPod(pod, new Map()))
    .filter((pod) => pod.ip !== undefined)
    .map((pod) => ({
      host: pod.ip!,
      port: pod.port,
      ...(password === undefined ? {} : { password }),
    }));
}

/**
 * Cold starts: when Redis holds a new data set (a new incarnation id, written by membership
 * when it creates the cluster: a new cluster, or one wiped whole and created again) and `backfill.policy` is OnColdStart, runs the indexed backfill Job that
 * loads the newest blobs of S3, once per incarnation; reports its progress (from Redis) and
 * outcome (from the Job) in status.backfill and the Warm condition, with Events; a finished
 * Job is kept `ttlSecondsAfterFinished`, then pruned. Runs after membership, before prune.
 */
export const backfillPhase: Phase = {
  name: 'backfill',
  async run(ctx) {
    const { blobCache } = ctx;
    const nodes = await redisNodes(ctx);
    const read =
      nodes.length === 0
        ? { incarnation: undefined, reports: [] }
        : await readBackfillState(ctx.redis, nodes, blobCache.spec.backfill.parallelism);
    // Membership, which writes the id when it creates the cluster, read it just before
    // (under the same guards): its answer wins should the two reads straddle a change.
    const known = ctx.membership?.incarnation;
    const state =
      known === undefined || known === read.incarnation
        ? read
        : { incarnation: known, reports: [] };
    const named = ctx.status.backfill?.job;
    const job = named === undefined ? null : await current<V1Job>(ctx, TYPES.Job, named);
    const decision = decideBackfill(blobCache, { ...state, job }, ctx.now());
    if (decision.create !== undefined) {
      const desired = backfillJob(blobCache, decision.create.incarnation, decision.create.rerun);
      // Created once: a Job the cache holds already is not asked for again.
      const existing =
        job?.metadata?.name === desired.metadata!.name
          ? job
          : await current<V1Job>(ctx, TYPES.Job, desired.metadata!.name!);
      const { created, object } =
        existing !== null
          ? { created: false, object: existing }
          : await ctx.kube.createIfAbsent(desired);
      ctx.fresh.set(objectKey(desired), object);
      if (created) ctx.log.info('Created backfill Job', { job: desired.metadata!.name });
    }
    const kept = decision.status?.job;
    if (decision.keep && kept !== undefined) ctx.wanted.add(`${TYPES.Job.kind}/${kept}`);
    ctx.backfill = {
      status: decision.status,
      ...(decision.warm === undefined ? {} : { warm: decision.warm }),
    };
    for (const event of decision.events) await ctx.event(event.type, event.reason, event.message);
    return decision.requeueAfterMs === undefined ? {} : { requeueAfterMs: decision.requeueAfterMs };
  },
};
