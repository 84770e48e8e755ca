import type { KubernetesObject } from '@kubernetes/client-node';
import type { DefaultedBlobCache } from '../api/v1alpha1/defaults.generated.ts';
import { httpAutoscaler, httpConfigMap, httpDeployment, httpPdb, httpService } from './http.ts';
import { redisShardPdb, redisShardService, redisShardStatefulSet } from './redis.ts';

/** Digests of what each tier's pods consume (see configChecksum). */
export interface ConfigChecksums {
  http: string;
  redis: string;
}

/**
 * Every object a BlobCache should own, in apply order (configuration before workloads).
 * Pure: the same BlobCache and checksums always give the same objects. Secrets are not
 * here: their random values are made once, not on every reconcile.
 */
export function desiredChildren(
  cache: DefaultedBlobCache,
  checksums: ConfigChecksums,
): KubernetesObject[] {
  const objects: (KubernetesObject | null)[] = [httpConfigMap(cache)];
  for (let shard = 0; shard < cache.spec.redis.shards; shard++) {
    objects.push(
      redisShardService(cache, shard),
      redisShardStatefulSet(cache, shard, checksums.redis),
      redisShardPdb(cache, shard),
    );
  }
  objects.push(
    httpService(cache),
    httpDeployment(cache, checksums.http),
    httpPdb(cache),
    httpAutoscaler(cache),
  );
  return objects.filter((object): object is KubernetesObject => object !== null);
}
