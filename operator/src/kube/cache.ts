import type { KubernetesObject } from '@kubernetes/client-node';
import type { KubeClient, TypeRef } from './client.ts';

/** Objects as the informers last saw them (read-only; see controller/watches.ts). */
export interface ObjectCache {
  /** Whether objects of this type are cached (reads of other types go to the API server). */
  has(type: TypeRef): boolean;
  get(type: TypeRef, namespace: string, name: string): KubernetesObject | undefined;
  list(type: TypeRef, namespace: string): KubernetesObject[];
}

/**
 * A KubeClient whose reads are served from the informers' caches where they exist; only
 * changes (and reads of types that are not cached) go to the API server. The cache can lag
 * a moment behind the operator's own writes: callers use what a write answered instead.
 */
export function withCache(kube: KubeClient, cache: ObjectCache): KubeClient {
  return {
    ...kube,
    async get<T extends KubernetesObject>(ref: Parameters<KubeClient['get']>[0]) {
      if (!cache.has(ref)) return kube.get<T>(ref);
      return (cache.get(ref, ref.namespace, ref.name) as T | undefined) ?? null;
    },
    async list<T extends KubernetesObject>(
      type: TypeRef,
      namespace: string,
      labels: Record<string, string>,
    ) {
      if (!cache.has(type)) return kube.list<T>(type, namespace, labels);
      return cache
        .list(type, namespace)
        .filter((object) =>
          Object.entries(labels).every(([key, value]) => object.metadata?.labels?.[key] === value),
        ) as T[];
    },
  };
}
