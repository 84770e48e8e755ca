import type { BlobCache } from '../../api/v1alpha1/types.generated.ts';

/** Kubernetes' own pattern for resource quantities (k8s.io/apimachinery resource.Quantity). */
const QUANTITY = /^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$/;

/**
 * `resources` is passed to the pods as it is (the schema keeps it open), so check what the
 * API server would otherwise refuse with a 500 that names no field.
 */
function validateResources(field: string, resources: Record<string, unknown> | undefined): void {
  if (resources === undefined) return;
  for (const [section, values] of Object.entries(resources)) {
    if (section === 'claims') continue;
    if (section !== 'limits' && section !== 'requests') {
      throw new TerminalError(
        `${field}.${section} is not a field of container resources (limits, requests, claims)`,
      );
    }
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      throw new TerminalError(`${field}.${section} must map resource names to quantities`);
    }
    for (const [resource, quantity] of Object.entries(values)) {
      if (!(
        typeof quantity === 'number' ||
        (typeof quantity === 'string' && QUANTITY.test(quantity))
      )) {
        throw new TerminalError(
          `${field}.${section}.${resource} must be a quantity such as 500m, 2 or 512Mi; got ${JSON.stringify(quantity)}`,
        );
      }
    }
  }
}
import { MAX_NAME_LENGTH } from '../../resources/names.ts';
import { TerminalError } from '../errors.ts';
import type { Phase } from './phase.ts';

/**
 * Rules the operator needs that a CRD installed from an older release may not enforce
 * (the current CRD rejects such objects outright with the same messages).
 */
export function validateBlobCache(cache: BlobCache): void {
  const name = cache.metadata.name ?? '';
  if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
    throw new TerminalError(
      `metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit); got '${name}'`,
    );
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new TerminalError(
      `metadata.name must be at most ${MAX_NAME_LENGTH} characters, got ${name.length}: derived names would exceed Kubernetes' limits`,
    );
  }
}

export const validatePhase: Phase = {
  name: 'validate',
  run(ctx) {
    validateBlobCache(ctx.blobCache);
    validateResources('spec.http.resources', ctx.blobCache.spec.http.resources);
    validateResources('spec.redis.resources', ctx.blobCache.spec.redis.resources);
    return Promise.resolve({});
  },
};
