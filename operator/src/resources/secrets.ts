import type { V1Secret } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import type { BlobCache } from '../api/v1alpha1/types.generated.ts';
import { metadataFor } from './labels.ts';
import { names } from './names.ts';

/** A fresh random secret value (generated once; the reconciler never replaces an existing one). */
export function newSecretValue(): string {
  return randomBytes(32).toString('base64url');
}

export function redisPasswordSecret(cache: BlobCache, password: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadataFor(cache, names.redisSecret(cache.metadata.name!), 'redis'),
    type: 'Opaque',
    stringData: { password },
  };
}

export function apiTokensSecret(
  cache: BlobCache,
  tokens: { read: string; write: string },
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadataFor(cache, names.apiTokens(cache.metadata.name!), 'http'),
    type: 'Opaque',
    stringData: { 'read-token': tokens.read, 'write-token': tokens.write },
  };
}

/** The Secrets the operator generates for a BlobCache, with fresh random values. */
export function generatedSecrets(cache: BlobCache): V1Secret[] {
  const secrets = [redisPasswordSecret(cache, newSecretValue())];
  if (cache.spec.http?.authSecretName === undefined) {
    secrets.push(apiTokensSecret(cache, { read: newSecretValue(), write: newSecretValue() }));
  }
  return secrets;
}
