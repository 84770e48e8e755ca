import type { V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND, type BlobCache } from '../api/v1alpha1/types.generated.ts';

export type Component = 'redis' | 'http' | 'backfill';

/** Labels every owned object carries; selectors use the subset that never changes. */
export function selectorLabels(
  cache: BlobCache,
  component: Component,
  shard?: number,
): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'blobcache',
    'app.kubernetes.io/instance': cache.metadata.name!,
    'app.kubernetes.io/component': component,
    ...(shard === undefined ? {} : { 'blobcache.io/shard': String(shard) }),
  };
}

export function labels(
  cache: BlobCache,
  component: Component,
  shard?: number,
): Record<string, string> {
  return {
    ...selectorLabels(cache, component, shard),
    'app.kubernetes.io/managed-by': 'blobcache-operator',
  };
}

/** Makes the BlobCache the controller of an object (garbage-collected with it). */
export function ownerReference(cache: BlobCache): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: cache.metadata.name!,
    uid: cache.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function metadataFor(cache: BlobCache, name: string, component: Component, shard?: number) {
  return {
    name,
    namespace: cache.metadata.namespace!,
    labels: labels(cache, component, shard),
    ownerReferences: [ownerReference(cache)],
  };
}
