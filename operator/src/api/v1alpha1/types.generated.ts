// Generated from crds/blobcache.io_blobcaches.yaml by scripts/generate-crd-types.ts. Do not edit.
import type { V1ObjectMeta } from '@kubernetes/client-node';

export const GROUP = "blobcache.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "BlobCache";
export const PLURAL = "blobcaches";

/** Resources reserved for each Redis container (cpu, memory, and any other resource name). */
export interface BlobCacheSpecRedisResourcesRequests {
  cpu?: unknown;
  memory?: unknown;
  [field: string]: unknown;
}

/** Most of each resource a Redis container may use; memory must leave room for maxMemory and replication buffers. */
export interface BlobCacheSpecRedisResourcesLimits {
  cpu?: unknown;
  memory?: unknown;
  [field: string]: unknown;
}

/** CPU and memory requests and limits of each Redis container (as in a Pod's container resources). */
export interface BlobCacheSpecRedisResources {
  /** Resources reserved for each Redis container (cpu, memory, and any other resource name). */
  requests?: BlobCacheSpecRedisResourcesRequests;
  /** Most of each resource a Redis container may use; memory must leave room for maxMemory and replication buffers. */
  limits?: BlobCacheSpecRedisResourcesLimits;
  [field: string]: unknown;
}

/** The Redis Cluster of the fast tier (one StatefulSet per shard). */
export interface BlobCacheSpecRedis {
  /** Number of Redis masters; the hash slots are spread over them. Scaling moves slots. */
  shards?: number;
  /** Replicas of each master, placed in other zones than their master. */
  replicasPerShard?: number;
  /** Redis maxmemory of each node (e.g. 2Gi). A master may also buffer up to half of it for each replica that fell behind, so a memory limit must be at least maxMemory × (1 + replicasPerShard / 2) + 128Mi (the API server refuses less). */
  maxMemory?: string;
  /** How keys travel when shards are added or removed. Migrate moves every key with its slot. Drop moves only what S3 does not have yet (blobs waiting for their upload, the write-behind journal, bookkeeping) and drops blobs S3 has, which refill from S3 on their next read: less to copy, colder afterwards. */
  resharding?: "Migrate" | "Drop";
  /** Redis image. It must hold the node start script at /usr/local/lib/blobcache/redis-node/start.sh and redis-server 7.0 or newer, as the project's blobcache/redis image does (npm run image, or the Dockerfile's redis target). */
  image?: string;
  /** CPU and memory requests and limits of each Redis container (as in a Pod's container resources). */
  resources?: BlobCacheSpecRedisResources;
}

/** A HorizontalPodAutoscaler for the HTTP pods. */
export interface BlobCacheSpecHttpAutoscaling {
  /** Fewest HTTP pods. */
  minReplicas: number;
  /** Most HTTP pods. */
  maxReplicas: number;
  /** Average CPU use the autoscaler aims for. */
  targetCPUUtilizationPercentage?: number;
}

/** The stateless HTTP cache pods (the data plane). */
export interface BlobCacheSpecHttp {
  /** HTTP pods. Ignored while autoscaling is enabled (the autoscaler owns it). */
  replicas?: number;
  /** The blobcache image (runs the data plane). */
  image?: string;
  /** Port of the HTTP API, on the pods and on the Service. */
  port?: number;
  /** CPU and memory requests and limits of each HTTP container. */
  resources?: Record<string, unknown>;
  /** Bytes of large blobs (8 MiB and up) each HTTP pod keeps verified copies of on its local disk, so that a popular blob is read from Redis once per pod rather than once per client (e.g. 2Gi; 0 turns the local tier off). The pod's emptyDir for it gets this size limit plus 64Mi; the copies are least recently used evicted within it and dropped when the pod restarts. */
  localTierSize?: string;
  /** Secret holding the bearer tokens (keys read-token and write-token). When unset the operator generates one named <name>-api-tokens. */
  authSecretName?: string;
  /** A HorizontalPodAutoscaler for the HTTP pods. */
  autoscaling?: BlobCacheSpecHttpAutoscaling;
}

/** An S3 bucket (AWS or any S3-compatible server). */
export interface BlobCacheSpecStoreS3 {
  /** Bucket name. Cannot change once set. */
  bucket: string;
  /** Region of the bucket. */
  region?: string;
  /** Endpoint of an S3-compatible server (http:// or https://); unset for AWS. */
  endpoint?: string;
  /** Key prefix; objects are <prefix>/<md5[0:2]>/<md5>. */
  prefix?: string;
  /** Path-style addressing (most S3-compatible servers need it). */
  forcePathStyle?: boolean;
  /** Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; unset to use the pod's identity. */
  credentialsSecretName?: string;
}

/** The durable tier. */
export interface BlobCacheSpecStore {
  /** An S3 bucket (AWS or any S3-compatible server). */
  s3: BlobCacheSpecStoreS3;
}

/** Spreading over availability zones. */
export interface BlobCacheSpecTopology {
  /** Node label that names the zone. */
  zoneLabelKey?: string;
  /** Required refuses to schedule a pod that would unbalance the zones; Preferred only tries. */
  spread?: "Required" | "Preferred";
}

/** Re-warming the cache from S3 after a cold start. */
export interface BlobCacheSpecBackfill {
  /** OnColdStart runs a backfill Job when Redis starts empty; Never does not. */
  policy?: "OnColdStart" | "Never";
  /** Most bytes loaded, newest blobs first (e.g. 10Gi). */
  maxBytes?: string;
  /** Pods of the backfill Job (each takes a share of the key prefixes). */
  parallelism?: number;
  /** How long a finished backfill Job (and its pods, with their logs) is kept before the operator deletes it. */
  ttlSecondsAfterFinished?: number;
}

/** The desired cache. */
export interface BlobCacheSpec {
  /** The Redis Cluster of the fast tier (one StatefulSet per shard). */
  redis?: BlobCacheSpecRedis;
  /** The stateless HTTP cache pods (the data plane). */
  http?: BlobCacheSpecHttp;
  /** The durable tier. */
  store: BlobCacheSpecStore;
  /** When uploads are acknowledged. WriteBehind: once in Redis on a master and a replica with a journal entry. Sync: once S3 has the blob. */
  durability?: "WriteBehind" | "Sync";
  /** Spreading over availability zones. */
  topology?: BlobCacheSpecTopology;
  /** Re-warming the cache from S3 after a cold start. */
  backfill?: BlobCacheSpecBackfill;
}

export interface BlobCacheStatusConditions {
  /** Condition type. */
  type: string;
  /** True, False or Unknown. */
  status: "True" | "False" | "Unknown";
  /** One CamelCase word saying why. */
  reason?: string;
  /** Details for people. */
  message?: string;
  /** When the status last changed. */
  lastTransitionTime?: string;
  /** The spec generation the condition describes. */
  observedGeneration?: number;
}

/** Redis tier counts. */
export interface BlobCacheStatusRedis {
  /** Redis pods ready. */
  readyNodes?: number;
  /** Redis pods wanted (shards × (1 + replicasPerShard)). */
  desiredNodes?: number;
  /** Shards of the spec whose master serves slots with every replica attached and in sync. */
  readyShards?: number;
  /** Shards the spec asks for. */
  desiredShards?: number;
  /** readyShards/desiredShards, for kubectl get. */
  shards?: string;
  /** Id of the data set held in Redis (key bc:incarnation); a new one means the cache started cold (a new or wiped cluster). */
  incarnation?: string;
}

/** HTTP tier counts. */
export interface BlobCacheStatusHttp {
  /** HTTP pods that exist. */
  replicas?: number;
  /** HTTP pods ready. */
  readyReplicas?: number;
  /** Label selector of the HTTP pods (for the scale subresource). */
  selector?: string;
}

/** The multi-step cluster operation under way (for example removing shards), kept here so that an operator restart resumes it. */
export interface BlobCacheStatusOperation {
  /** What is being done (Create, ScaleOut, ScaleIn, Rebalance, Heal, ZoneBalance). */
  type: string;
  /** The step last taken (e.g. MoveSlots, Replicate, RemoveNodes), Wait while waiting for the cluster, or Blocked when it needs someone to act. */
  step: string;
  /** When the operation started. */
  startedAt?: string;
  /** The shards the operation concerns (e.g. those leaving). */
  shards?: number[];
  /** Details for people. */
  message?: string;
  /** What a later step needs to resume (e.g. the slot being moved and between which nodes). */
  state?: Record<string, unknown>;
}

/** The backfill of the Redis data set the cache holds now (its incarnation), once the operator saw it. */
export interface BlobCacheStatusBackfill {
  /** Id of the Redis data set this backfill warms (Redis key bc:incarnation); a new one starts a new backfill. */
  incarnation?: string;
  /** Pending, Running, Succeeded, Failed, Skipped (backfill.policy was Never when the data set was new), or Cancelled (it was set to Never during the run). */
  phase?: string;
  /** Name of the backfill Job. */
  job?: string;
  /** The value of the blobcache.io/backfill-rerun annotation already answered (a Job started for it, or the annotation was there when the data set was new); setting the annotation to another value runs the backfill again. */
  rerun?: string;
  /** Bytes of the selected blobs in Redis now (loaded by the Job, or found there). */
  loadedBytes?: number;
  /** Bytes of the newest blobs selected, at most maxBytes (over the partitions that reported). */
  totalBytes?: number;
  /** Selected blobs in Redis now. */
  loadedBlobs?: number;
  /** Blobs selected (over the partitions that reported). */
  totalBlobs?: number;
  /** Selected blobs that could not be loaded (damaged or gone in the durable tier). */
  skippedBlobs?: number;
  /** Share of the selected bytes in Redis now. */
  percent?: number;
  /** Current load rate over all partitions. */
  bytesPerSecond?: number;
  /** Estimated time left. */
  secondsLeft?: number;
  /** Pods of the Job that have reported progress. */
  partitionsReporting?: number;
  /** When the Job was created. */
  startedAt?: string;
  /** When the Job finished. */
  completedAt?: string;
  /** Details for people. */
  message?: string;
}

/** What the operator observed. */
export interface BlobCacheStatus {
  /** The spec generation this status describes. */
  observedGeneration?: number;
  /** In-cluster URL of the HTTP API. */
  url?: string;
  /** Ready, Progressing, Degraded, SlotsCovered, ZoneSpread, Warm. */
  conditions?: BlobCacheStatusConditions[];
  /** Redis tier counts. */
  redis?: BlobCacheStatusRedis;
  /** HTTP tier counts. */
  http?: BlobCacheStatusHttp;
  /** The multi-step cluster operation under way (for example removing shards), kept here so that an operator restart resumes it. */
  operation?: BlobCacheStatusOperation;
  /** The backfill of the Redis data set the cache holds now (its incarnation), once the operator saw it. */
  backfill?: BlobCacheStatusBackfill;
}

/** BlobCache is a runtime blob cache: stateless HTTP cache pods on a Redis Cluster (fast tier) that write behind to S3 (durable tier). Clients reach it at http://<name>.<namespace>.svc:<port>. */
export interface BlobCache {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: V1ObjectMeta;
  spec: BlobCacheSpec;
  status?: BlobCacheStatus;
}
