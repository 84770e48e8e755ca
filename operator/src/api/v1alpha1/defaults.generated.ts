// Generated from crds/blobcache.io_blobcaches.yaml by scripts/generate-crd-types.ts. Do not edit.
import type { BlobCache, BlobCacheSpec, BlobCacheSpecBackfill, BlobCacheSpecHttp, BlobCacheSpecHttpAutoscaling, BlobCacheSpecRedis, BlobCacheSpecStore, BlobCacheSpecStoreS3, BlobCacheSpecTopology } from './types.generated.ts';

/** BlobCacheSpec with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpec extends BlobCacheSpec {
  redis: DefaultedBlobCacheSpecRedis;
  http: DefaultedBlobCacheSpecHttp;
  store: DefaultedBlobCacheSpecStore;
  durability: "WriteBehind" | "Sync";
  topology: DefaultedBlobCacheSpecTopology;
  backfill: DefaultedBlobCacheSpecBackfill;
}

/** BlobCacheSpecBackfill with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecBackfill extends BlobCacheSpecBackfill {
  policy: "OnColdStart" | "Never";
  maxBytes: string;
  parallelism: number;
  ttlSecondsAfterFinished: number;
}

/** BlobCacheSpecTopology with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecTopology extends BlobCacheSpecTopology {
  zoneLabelKey: string;
  spread: "Required" | "Preferred";
}

/** BlobCacheSpecStore with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecStore extends BlobCacheSpecStore {
  s3: DefaultedBlobCacheSpecStoreS3;
}

/** BlobCacheSpecStoreS3 with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecStoreS3 extends BlobCacheSpecStoreS3 {
  region: string;
  prefix: string;
}

/** BlobCacheSpecHttp with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecHttp extends BlobCacheSpecHttp {
  replicas: number;
  image: string;
  port: number;
  localTierSize: string;
  autoscaling?: DefaultedBlobCacheSpecHttpAutoscaling;
}

/** BlobCacheSpecHttpAutoscaling with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecHttpAutoscaling extends BlobCacheSpecHttpAutoscaling {
  targetCPUUtilizationPercentage: number;
}

/** BlobCacheSpecRedis with the CRD's defaults applied. */
export interface DefaultedBlobCacheSpecRedis extends BlobCacheSpecRedis {
  shards: number;
  replicasPerShard: number;
  maxMemory: string;
  resharding: "Migrate" | "Drop";
  image: string;
}

/**
 * The spec with every default of the CRD filled in where a field is absent, as the API
 * server stores it. The CRD's `default:` values are the only source of defaults; use this
 * instead of fallbacks in code. Pure: the argument is not changed.
 */
export function withDefaults(spec: BlobCacheSpec): DefaultedBlobCacheSpec {
  return defaultBlobCacheSpec(spec);
}

/** A BlobCache whose spec has every default filled in. */
export type DefaultedBlobCache = Omit<BlobCache, 'spec'> & { spec: DefaultedBlobCacheSpec };

/** The object with its spec defaulted (see withDefaults). */
export function defaulted(object: BlobCache): DefaultedBlobCache {
  return { ...object, spec: withDefaults(object.spec) };
}

function defaultBlobCacheSpec(value: BlobCacheSpec): DefaultedBlobCacheSpec {
  return {
    ...value,
    redis: defaultBlobCacheSpecRedis(value.redis ?? {}),
    http: defaultBlobCacheSpecHttp(value.http ?? {}),
    store: defaultBlobCacheSpecStore(value.store),
    durability: value.durability ?? "WriteBehind",
    topology: defaultBlobCacheSpecTopology(value.topology ?? {}),
    backfill: defaultBlobCacheSpecBackfill(value.backfill ?? {}),
  };
}

function defaultBlobCacheSpecBackfill(value: BlobCacheSpecBackfill): DefaultedBlobCacheSpecBackfill {
  return {
    ...value,
    policy: value.policy ?? "OnColdStart",
    maxBytes: value.maxBytes ?? "1Gi",
    parallelism: value.parallelism ?? 2,
    ttlSecondsAfterFinished: value.ttlSecondsAfterFinished ?? 86400,
  };
}

function defaultBlobCacheSpecTopology(value: BlobCacheSpecTopology): DefaultedBlobCacheSpecTopology {
  return {
    ...value,
    zoneLabelKey: value.zoneLabelKey ?? "topology.kubernetes.io/zone",
    spread: value.spread ?? "Preferred",
  };
}

function defaultBlobCacheSpecStore(value: BlobCacheSpecStore): DefaultedBlobCacheSpecStore {
  return {
    ...value,
    s3: defaultBlobCacheSpecStoreS3(value.s3),
  };
}

function defaultBlobCacheSpecStoreS3(value: BlobCacheSpecStoreS3): DefaultedBlobCacheSpecStoreS3 {
  return {
    ...value,
    region: value.region ?? "us-east-1",
    prefix: value.prefix ?? "blobs",
  };
}

function defaultBlobCacheSpecHttp({ autoscaling, ...value }: BlobCacheSpecHttp): DefaultedBlobCacheSpecHttp {
  return {
    ...value,
    replicas: value.replicas ?? 2,
    image: value.image ?? "blobcache/blobcache:0.1.0",
    port: value.port ?? 8080,
    localTierSize: value.localTierSize ?? "2Gi",
    ...(autoscaling === undefined ? {} : { autoscaling: defaultBlobCacheSpecHttpAutoscaling(autoscaling) }),
  };
}

function defaultBlobCacheSpecHttpAutoscaling(value: BlobCacheSpecHttpAutoscaling): DefaultedBlobCacheSpecHttpAutoscaling {
  return {
    ...value,
    targetCPUUtilizationPercentage: value.targetCPUUtilizationPercentage ?? 70,
  };
}

function defaultBlobCacheSpecRedis(value: BlobCacheSpecRedis): DefaultedBlobCacheSpecRedis {
  return {
    ...value,
    shards: value.shards ?? 3,
    replicasPerShard: value.replicasPerShard ?? 1,
    maxMemory: value.maxMemory ?? "1Gi",
    resharding: value.resharding ?? "Migrate",
    image: value.image ?? "blobcache/redis:0.1.0",
  };
}
