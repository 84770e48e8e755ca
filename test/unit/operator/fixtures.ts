import {
  defaulted,
  type DefaultedBlobCache,
} from '../../../operator/src/api/v1alpha1/defaults.generated.ts';
import type { BlobCache } from '../../../operator/src/api/v1alpha1/types.generated.ts';

/** A BlobCache named `c` in namespace `ns`, as the API server would store it (defaulted). */
export function blobCache(spec: Partial<BlobCache['spec']> = {}, name = 'c'): DefaultedBlobCache {
  return defaulted({
    apiVersion: 'blobcache.io/v1alpha1',
    kind: 'BlobCache',
    metadata: { name, namespace: 'ns', uid: 'u-1', generation: 3 },
    spec: { store: { s3: { bucket: 'b' } }, ...spec },
  });
}

export const CHECKSUMS = { http: 'h'.repeat(64), redis: 'r'.repeat(64) };
