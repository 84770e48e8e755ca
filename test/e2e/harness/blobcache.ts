/**
 * BlobCaches as users describe and inspect them: a sample from crds/samples/ with its S3
 * store pointed at the harness's S3 server (credentials in a Secret, as the README says to
 * do for an S3-compatible server), and what `kubectl get` shows of it and its children.
 */
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { S3_REGION } from '../../harness/services.ts';
import { cluster } from './cluster.ts';
import { zonesOf } from './scenario.ts';

export interface BlobCacheObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; generation?: number };
  spec: Record<string, unknown> & {
    store: { s3: Record<string, unknown> };
  };
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    [field: string]: unknown;
  };
}

/** A sample of crds/samples/ as the file has it. */
export function sample(file: string): BlobCacheObject {
  return parse(readFileSync(join(REPO_ROOT, 'crds/samples', file), 'utf8')) as BlobCacheObject;
}

/** The S3 client of the tests (versitygw on the host bridge, path-style). */
export function s3Client(): S3Client {
  const { s3 } = cluster();
  return new S3Client({
    endpoint: s3.endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

export async function createBucket(bucket: string): Promise<void> {
  const client = s3Client();
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

/** The Secret of S3 credentials a BlobCache names in `store.s3.credentialsSecretName`. */
export function s3CredentialsSecret(namespace: string, name: string): Record<string, unknown> {
  const { s3 } = cluster();
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    stringData: { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey },
  };
}

/**
 * `cache` with its store moved to the harness's S3 server, as a user edits a sample for an
 * S3-compatible server: endpoint, path-style addressing, credentials from `secret`.
 */
export function onHarnessS3(cache: BlobCacheObject, secret: string): BlobCacheObject {
  return {
    ...cache,
    spec: {
      ...cache.spec,
      store: {
        ...cache.spec.store,
        s3: {
          ...cache.spec.store.s3,
          endpoint: cluster().s3.endpoint,
          forcePathStyle: true,
          credentialsSecretName: secret,
        },
      },
    },
  };
}

export async function getBlobCache(namespace: string, name: string): Promise<BlobCacheObject> {
  return cluster().kubectl.json<BlobCacheObject>(['get', 'blobcache', name, '-n', namespace]);
}

/** Asks for `shards` Redis shards, as a user would: a merge patch of the spec with kubectl. */
export async function scaleShards(namespace: string, name: string, shards: number): Promise<void> {
  await cluster().kubectl.run([
    'patch',
    'blobcache',
    name,
    '-n',
    namespace,
    '--type',
    'merge',
    '-p',
    JSON.stringify({ spec: { redis: { shards } } }),
  ]);
}

export function conditionOf(
  cache: BlobCacheObject,
  type: string,
): { status: string; reason?: string; message?: string } | undefined {
  return cache.status?.conditions?.find((condition) => condition.type === type);
}

interface Owned {
  metadata: { name: string; ownerReferences?: { uid: string; controller?: boolean }[] };
}

/** Names of the objects of `kind` in `namespace` that `owner` controls. */
export async function ownedBy(namespace: string, kind: string, owner: string): Promise<string[]> {
  const list = await cluster().kubectl.json<{ items: Owned[] }>(['get', kind, '-n', namespace]);
  return list.items
    .filter((item) =>
      (item.metadata.ownerReferences ?? []).some((ref) => ref.uid === owner && ref.controller),
    )
    .map((item) => item.metadata.name)
    .sort();
}

interface PodList {
  items: {
    metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
    status: { phase: string };
  }[];
}

/** Selector of a BlobCache's Pods of one tier (the operator's labels). */
export function tierSelector(name: string, component: 'redis' | 'http'): string {
  return `app.kubernetes.io/instance=${name},app.kubernetes.io/component=${component}`;
}

/**
 * Waits until `count` Pods of the tier run, and no other (phase Running; Ready is not
 * asked: HTTP pods are Ready only once Redis serves), or at least `count` with `atLeast`
 * (a rollout under way holds old and new Pods); returns their zones by Pod name, with
 * their shard label for Redis Pods.
 */
export async function waitTierRunning(
  namespace: string,
  name: string,
  component: 'redis' | 'http',
  count: number,
  options: { atLeast?: boolean } = {},
): Promise<{ zones: Map<string, string>; shards: Map<string, string> }> {
  const selector = tierSelector(name, component);
  const pods = await eventually(
    `${count} ${component} Pods of ${namespace}/${name} to run`,
    async () => {
      const list = await cluster().kubectl.json<PodList>([
        'get',
        'pods',
        '-n',
        namespace,
        '-l',
        selector,
      ]);
      // A Pod on its way out still says Running: only the ones staying count.
      const staying = list.items.filter((pod) => pod.metadata.deletionTimestamp === undefined);
      const running = staying.filter((pod) => pod.status.phase === 'Running');
      const enough = options.atLeast === true ? running.length >= count : running.length === count;
      return enough && staying.length === running.length ? running : null;
    },
    { timeoutMs: 240_000, intervalMs: 1000 },
  );
  const shards = new Map(
    pods.map((pod) => [pod.metadata.name, pod.metadata.labels?.['blobcache.io/shard'] ?? '']),
  );
  const zones = await zonesOf(namespace, selector);
  return {
    zones: new Map([...zones].filter(([pod]) => shards.has(pod))),
    shards,
  };
}

export interface SmallBlobCacheOptions {
  shards?: number;
  replicasPerShard?: number;
  httpReplicas?: number;
  durability?: 'WriteBehind' | 'Sync';
  /** Spec fields laid over the rest (e.g. backfill). */
  spec?: Record<string, unknown>;
}

/**
 * A BlobCache sized for this machine (Redis nodes of 128 MiB, small requests) on the
 * harness's S3 server: its bucket is created and its credentials Secret is included.
 * Returns the objects to `kubectl apply`.
 */
export async function smallBlobCache(
  namespace: string,
  name: string,
  options: SmallBlobCacheOptions = {},
): Promise<object[]> {
  const bucket = `${namespace}-${name}`;
  await createBucket(bucket);
  const secret = `${name}-s3`;
  const cache: BlobCacheObject = {
    apiVersion: 'blobcache.io/v1alpha1',
    kind: 'BlobCache',
    metadata: { name, namespace },
    spec: {
      redis: {
        shards: options.shards ?? 3,
        replicasPerShard: options.replicasPerShard ?? 1,
        maxMemory: '128Mi',
        // The API server asks for maxMemory × 1.5 + 128Mi with one replica.
        resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '384Mi' } },
      },
      http: {
        replicas: options.httpReplicas ?? 2,
        resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '512Mi' } },
      },
      durability: options.durability ?? 'WriteBehind',
      store: { s3: { bucket } },
      ...options.spec,
    },
  };
  return [s3CredentialsSecret(namespace, secret), onHarnessS3(cache, secret)];
}

/**
 * What "done" looks like to a user: status of the current generation, Ready, not
 * Progressing, every slot covered, zones spread, no operation under way, every shard ready.
 */
export function settled(cache: BlobCacheObject): boolean {
  const is = (type: string, status: string) => conditionOf(cache, type)?.status === status;
  const redis = cache.status?.redis as { readyShards?: number; desiredShards?: number } | undefined;
  return (
    cache.status?.observedGeneration === cache.metadata.generation &&
    is('Ready', 'True') &&
    is('Progressing', 'False') &&
    is('SlotsCovered', 'True') &&
    is('ZoneSpread', 'True') &&
    cache.status?.operation === undefined &&
    redis?.readyShards === redis?.desiredShards
  );
}

/** Waits until the BlobCache has settled (see `settled`); the timeout names its last status. */
export async function waitSettled(
  namespace: string,
  name: string,
  timeoutMs = 300_000,
): Promise<BlobCacheObject> {
  let last: BlobCacheObject | undefined;
  try {
    return await eventually(
      `${namespace}/${name} to settle`,
      async () => {
        last = await getBlobCache(namespace, name);
        return settled(last) ? last : null;
      },
      { timeoutMs, intervalMs: 1000 },
    );
  } catch (error) {
    throw new Error(`${String(error)}; last status: ${JSON.stringify(last?.status)}`, {
      cause: error,
    });
  }
}

/**
 * The keys S3 still lacks once it holds them all or `timeoutMs` passed (WriteBehind copies
 * blobs in the background). Objects are `blobs/<md5[0:2]>/<md5>` (the default prefix).
 */
export async function missingFromS3(
  bucket: string,
  keys: readonly string[],
  timeoutMs = 180_000,
): Promise<string[]> {
  const client = s3Client();
  const missing = new Set(keys);
  const held = (key: string) =>
    client
      .send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/${key.slice(0, 2)}/${key}` }))
      .then(
        () => true,
        () => false,
      );
  try {
    await eventually(
      `${keys.length} blobs in S3`,
      async () => {
        for (const key of [...missing]) if (await held(key)) missing.delete(key);
        return missing.size === 0;
      },
      { timeoutMs, intervalMs: 2000 },
    ).catch(() => undefined);
    return [...missing];
  } finally {
    client.destroy();
  }
}
