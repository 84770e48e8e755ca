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
};

export const FIELD_MANAGER = 'blobcache-operator';
export const REDIS_PORT = 6379;
export const REDIS_BUS_PORT = 16379;
