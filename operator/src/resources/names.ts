/** Deterministic names of everything a BlobCache owns (stable across reconciles and restarts). */
export const names = {
  /** The client Service: clients use http://<name>.<namespace>.svc:<port>. */
  service: (cache: string) => cache,
  httpDeployment: (cache: string) => `${cache}-http`,
  httpPdb: (cache: string) => `${cache}-http`,
  hpa: (cache: string) => `${cache}-http`,
  config: (cache: string) => `${cache}-config`,
  apiTokens: (cache: string) => `${cache}-api-tokens`,
  redisSecret: (cache: string) => `${cache}-redis`,
  redisShard: (cache: string, shard: number) => `${cache}-redis-${shard}`,
  /** One per Redis data set (incarnation): `digest` names it (see backfillJobName). */
  backfillJob: (cache: string, digest: string) => `${cache}-backfill-${digest}`,
};

/**
 * The longest BlobCache name (the CRD enforces it with a CEL rule that says so). The longest
 * derived name is the StatefulSet `<name>-redis-63` (64 shards at most); its pods carry the
 * label `controller-revision-hash: <statefulset>-<hash of up to 10 characters>`, and a label
 * value holds at most 63 characters: 43 + 9 + 11 = 63.
 */
export const MAX_NAME_LENGTH = 43;

export const FIELD_MANAGER = 'blobcache-operator';
export const REDIS_PORT = 6379;
export const REDIS_BUS_PORT = 16379;

/** On a pod template: digest of every ConfigMap and Secret the pods consume. */
export const CONFIG_CHECKSUM_ANNOTATION = 'blobcache.io/config-checksum';
/** On every applied child: digest of what the operator last applied (see children phase). */
export const APPLIED_ANNOTATION = 'blobcache.io/applied';
