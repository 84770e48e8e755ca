import type {
  KubernetesObject,
  V1Deployment,
  V1Secret,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'winston';
import { API_VERSION, KIND, PLURAL, type BlobCache } from '../api/v1alpha1/types.generated.ts';
import type { KubeClient, ObjectRef } from '../kube/client.ts';
import { desiredChildren } from '../resources/desired.ts';
import { names } from '../resources/names.ts';
import { apiTokensSecret, newSecretValue, redisPasswordSecret } from '../resources/secrets.ts';
import { computeStatus } from './status.ts';

export interface ReconcileKey {
  namespace: string;
  name: string;
}

export interface ReconcileResult {
  /** Reconcile again after this long even if nothing changes (status follows pods). */
  requeueAfterMs?: number;
}

export interface ReconcileDeps {
  kube: KubeClient;
  logger: Logger;
  now?: () => Date;
}

function refOf(object: KubernetesObject): ObjectRef {
  return {
    apiVersion: object.apiVersion!,
    kind: object.kind!,
    name: object.metadata!.name!,
    namespace: object.metadata!.namespace!,
  };
}

/**
 * Converges everything a BlobCache owns to its spec, then writes its status. Level-
 * triggered: it reads the world and never looks at what event caused it, so running it
 * twice in a row changes nothing the second time.
 */
export async function reconcile(deps: ReconcileDeps, key: ReconcileKey): Promise<ReconcileResult> {
  const { kube, logger } = deps;
  const cache = await kube.read<BlobCache>({ apiVersion: API_VERSION, kind: KIND, ...key });
  if (cache === null || cache.metadata.deletionTimestamp !== undefined) {
    // Deleted: owner references let the garbage collector remove the children.
    return {};
  }
  const log = logger.child({ namespace: key.namespace, blobcache: key.name });
  await ensureSecrets(kube, cache, log);
  for (const object of desiredChildren(cache)) await kube.apply(object);
  await removeStale(kube, cache, log);
  const shards = cache.spec.redis?.shards ?? 3;
  const observed = {
    deployment: await kube.read<V1Deployment>({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: names.httpDeployment(key.name),
      namespace: key.namespace,
    }),
    shards: await Promise.all(
      Array.from({ length: shards }, (_, shard) =>
        kube.read<V1StatefulSet>({
          apiVersion: 'apps/v1',
          kind: 'StatefulSet',
          name: names.redisShard(key.name, shard),
          namespace: key.namespace,
        }),
      ),
    ),
  };
  const status = computeStatus(cache, observed, (deps.now ?? (() => new Date()))());
  if (!isDeepStrictEqual(status, cache.status)) {
    await kube.patchStatus({ ...refOf(cache), plural: PLURAL }, status);
    const wasReady = readiness(cache.status);
    const ready = readiness(status);
    log.info('Updated BlobCache status', { ready });
    if (wasReady !== ready && (ready === 'True' || wasReady === 'True')) {
      const message = status.conditions?.find((c) => c.type === 'Ready')?.message ?? '';
      const became = ready === 'True';
      await announce(
        kube,
        cache,
        became ? 'Normal' : 'Warning',
        became ? 'Ready' : 'NotReady',
        message,
      );
    }
  }
  return { requeueAfterMs: 30_000 };
}

function readiness(status: BlobCache['status']): string | undefined {
  return status?.conditions?.find((condition) => condition.type === 'Ready')?.status;
}

/** Events are best effort: failing to record one never fails a reconcile. */
async function announce(
  kube: KubeClient,
  cache: BlobCache,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
): Promise<void> {
  await kube
    .recordEvent(cache as KubernetesObject, { type, reason, message })
    .catch(() => undefined);
}

/** Generates the Redis password and API tokens once; existing Secrets are never replaced. */
async function ensureSecrets(kube: KubeClient, cache: BlobCache, log: Logger): Promise<void> {
  const wanted: V1Secret[] = [redisPasswordSecret(cache, newSecretValue())];
  if (cache.spec.http?.authSecretName === undefined) {
    wanted.push(apiTokensSecret(cache, { read: newSecretValue(), write: newSecretValue() }));
  }
  for (const secret of wanted) {
    if (await kube.createIfAbsent(secret)) {
      log.info('Created Secret', { name: secret.metadata!.name });
      await announce(
        kube,
        cache,
        'Normal',
        'CreatedSecret',
        `Generated Secret ${secret.metadata!.name}`,
      );
    }
  }
}

/** Removes owned objects the spec no longer asks for (an autoscaler that was turned off). */
async function removeStale(kube: KubeClient, cache: BlobCache, log: Logger): Promise<void> {
  if (cache.spec.http?.autoscaling === undefined) {
    const removed = await kube.delete({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      name: names.hpa(cache.metadata.name!),
      namespace: cache.metadata.namespace!,
    });
    if (removed) {
      log.info('Deleted HorizontalPodAutoscaler', { name: names.hpa(cache.metadata.name!) });
      await announce(kube, cache, 'Normal', 'DeletedAutoscaler', 'Autoscaling was turned off');
    }
  }
}
