import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { PLURAL, type BlobCache } from '../../api/v1alpha1/types.generated.ts';
import { TYPES } from '../../kube/access.ts';
import { names } from '../../resources/names.ts';
import { current, type ReconcileContext } from '../context.ts';
import type { TerminalError } from '../errors.ts';
import { computeStatus, statusPatch } from '../status.ts';

const readiness = (status: BlobCache['status']) =>
  status?.conditions?.find((condition) => condition.type === 'Ready');

/**
 * The last step of every reconcile, also after a failed phase (so an operation's progress
 * and a spec's rejection are recorded): computes the status from the children and what the
 * phases reported, and writes it only when it differs. Events mark changes of readiness.
 */
export async function writeStatus(ctx: ReconcileContext, invalid?: TerminalError): Promise<void> {
  const { blobCache } = ctx;
  const name = blobCache.metadata.name!;
  const shards = await Promise.all(
    Array.from({ length: blobCache.spec.redis.shards }, (_, shard) =>
      current<V1StatefulSet>(ctx, TYPES.StatefulSet, names.redisShard(name, shard)),
    ),
  );
  const deployment = await current<V1Deployment>(ctx, TYPES.Deployment, names.httpDeployment(name));
  const status = computeStatus(
    blobCache,
    {
      deployment,
      shards,
      operation: ctx.status.operation,
      missingSecrets: ctx.missingSecrets,
      ...(ctx.membership === undefined ? {} : { membership: ctx.membership }),
      ...(invalid === undefined
        ? {}
        : { invalid: { reason: invalid.reason, message: invalid.message } }),
    },
    ctx.now(),
  );
  if (isDeepStrictEqual(status, blobCache.status)) return;
  await ctx.kube.patchStatus(
    {
      apiVersion: blobCache.apiVersion,
      kind: blobCache.kind,
      name,
      namespace: blobCache.metadata.namespace!,
      plural: PLURAL,
    },
    statusPatch(blobCache.status, status),
  );
  const before = readiness(blobCache.status);
  const after = readiness(status);
  ctx.log.info('Updated BlobCache status', { ready: after?.status, reason: after?.reason });
  if (before?.reason === after?.reason && before?.message === after?.message) return;
  if (invalid !== undefined) {
    await ctx.event('Warning', invalid.reason, invalid.message);
  } else if (after?.status === 'True' && before?.status !== 'True') {
    await ctx.event('Normal', 'Ready', after.message ?? '');
  } else if (after?.status !== 'True' && before?.status === 'True') {
    await ctx.event('Warning', 'NotReady', after?.message ?? '');
  }
}
