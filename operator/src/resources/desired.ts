import type { KubernetesObject } from '@kubernetes/client-node';
import type { BlobCache } from '../api/v1alpha1/types.generated.ts';
import { httpAutoscaler, httpConfigMap, httpDeployment, httpPdb, httpService } from './http.ts';
import { redisShardPdb, redisShardService, redisShardStatefulSet } from './redis.ts';

/**
 * Every object a BlobCache should own, in apply order (configuration before workloads).
 * Pure: the same BlobCache always gives the same objects. Secrets are not here: their
 * random values are made once, not on every reconcile.
 */
export function desiredChildren(cache: BlobCache): KubernetesObject[] {
  const shards = cache.spec.redis?.shards ?? 3;
  const objects: (KubernetesObject | null)[] = [httpConfigMap(cache)];
  for (let shard = 0; shard < shards; shard++) {
    objects.push(
      redisShardService(cache, shard),
      redisShardStatefulSet(cache, shard),
      redisShardPdb(cache, shard),
    );
  }
  objects.push(httpService(cache), httpDeployment(cache), httpPdb(cache), httpAutoscaler(cache));
  return objects.filter((object): object is KubernetesObject => object !== null);
}
