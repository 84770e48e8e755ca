import type { KubernetesObject, V1Deployment, V1Secret } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { TYPES } from '../../kube/access.ts';
import { statusCode, statusMessage } from '../../kube/client.ts';
import { configChecksum, consumedSecrets, type ConsumedData } from '../../resources/checksum.ts';
import { desiredChildren } from '../../resources/desired.ts';
import { httpConfigMap } from '../../resources/http.ts';
import { APPLIED_ANNOTATION, names } from '../../resources/names.ts';
import { contains } from '../contains.ts';
import { current, objectKey, type ReconcileContext } from '../context.ts';
import { isSpecRejection, TerminalError } from '../errors.ts';
import type { Phase } from './phase.ts';

async function secretData(ctx: ReconcileContext, name: string): Promise<ConsumedData> {
  const secret = await current<V1Secret>(ctx, TYPES.Secret, name);
  if (secret === null) ctx.missingSecrets.push(name);
  return { kind: 'Secret', name, data: secret === null ? null : (secret.data ?? {}) };
}

/** Marks an object with a digest of itself, so an unchanged desired object is never re-sent. */
function stamped(object: KubernetesObject): KubernetesObject {
  const digest = createHash('sha256').update(JSON.stringify(object)).digest('hex').slice(0, 20);
  const metadata = object.metadata ?? {};
  return {
    ...object,
    metadata: {
      ...metadata,
      annotations: { ...metadata.annotations, [APPLIED_ANNOTATION]: digest },
    },
  };
}

/** A rollout is complete when every pod runs the current template. */
function rolledOut(deployment: V1Deployment | null): boolean {
  const status = deployment?.status;
  return (
    deployment !== null &&
    (status?.observedGeneration ?? 0) >= (deployment.metadata?.generation ?? 0) &&
    (status?.updatedReplicas ?? 0) === (status?.replicas ?? 0)
  );
}

/**
 * Applies every child the spec asks for, with server-side apply, skipping those the cache
 * shows already as wanted (the annotation says the same object was applied, and nothing
 * drifted). Pod templates carry a checksum of the ConfigMap and Secrets they consume.
 */
export const childrenPhase: Phase = {
  name: 'children',
  async run(ctx) {
    const { blobCache } = ctx;
    const consumed = consumedSecrets(blobCache);
    const config = httpConfigMap(blobCache);
    const checksums = {
      http: configChecksum([
        { kind: 'ConfigMap', name: config.metadata!.name!, data: config.data ?? {} },
        ...(await Promise.all(consumed.http.map((name) => secretData(ctx, name)))),
      ]),
      redis: configChecksum(await Promise.all(consumed.redis.map((name) => secretData(ctx, name)))),
    };
    for (const desired of desiredChildren(blobCache, checksums).map(stamped)) {
      const key = objectKey(desired);
      ctx.wanted.add(key);
      const type = { apiVersion: desired.apiVersion!, kind: desired.kind! };
      const live = await current(ctx, type, desired.metadata!.name!);
      if (live !== null && contains(live, desired)) {
        ctx.fresh.set(key, live);
        continue;
      }
      try {
        ctx.fresh.set(key, await ctx.kube.apply(desired));
      } catch (error) {
        if (!isSpecRejection(statusCode(error))) throw error;
        throw new TerminalError(
          `The API server refused ${desired.kind} ${desired.metadata!.name}: ${statusMessage(error)}`,
          { cause: error },
        );
      }
      ctx.log.info(live === null ? 'Created child' : 'Updated child', { object: key });
    }
    // Old pods still read the generated token Secret until the rollout replaces them.
    const deployment = ctx.fresh.get(
      `Deployment/${names.httpDeployment(blobCache.metadata.name!)}`,
    );
    const tokens = `Secret/${names.apiTokens(blobCache.metadata.name!)}`;
    ctx.holds.push((object) =>
      objectKey(object) === tokens && !rolledOut(deployment ?? null)
        ? 'the HTTP pods still read it until their rollout finishes'
        : undefined,
    );
    return {};
  },
};
