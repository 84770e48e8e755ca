import { createHash } from 'node:crypto';
import type { BlobCache } from '../api/v1alpha1/types.generated.ts';
import { names } from './names.ts';

/** The Secret with the API tokens: the user's, or else one the operator generates. */
export function tokensSecretName(cache: BlobCache): string {
  return cache.spec.http?.authSecretName ?? names.apiTokens(cache.metadata.name!);
}

/** Names of the Secrets each tier's pods read (through secretKeyRef). */
export function consumedSecrets(cache: BlobCache): { http: string[]; redis: string[] } {
  const name = cache.metadata.name!;
  const credentials = cache.spec.store.s3.credentialsSecretName;
  return {
    http: [
      tokensSecretName(cache),
      names.redisSecret(name),
      ...(credentials === undefined ? [] : [credentials]),
    ],
    redis: [names.redisSecret(name)],
  };
}

export interface ConsumedData {
  kind: 'ConfigMap' | 'Secret';
  name: string;
  /** The object's data, or null when it does not exist (yet). */
  data: Record<string, string> | null;
}

/**
 * A digest of everything a pod template consumes, put on the template as an annotation:
 * pods read ConfigMaps and Secrets only when they start, so a change must change the
 * template to reach running pods (the Deployment or StatefulSet then rolls them).
 */
export function configChecksum(inputs: readonly ConsumedData[]): string {
  const hash = createHash('sha256');
  const sorted = [...inputs].sort((a, b) =>
    `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`),
  );
  for (const { kind, name, data } of sorted) {
    const entries =
      data === null ? null : Object.entries(data).sort(([a], [b]) => a.localeCompare(b));
    hash.update(JSON.stringify([kind, name, entries]));
  }
  return hash.digest('hex');
}
