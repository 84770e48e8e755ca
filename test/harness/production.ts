import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Cluster } from 'ioredis';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Store } from '../../dataplane/src/backends/s3.ts';
import { startCountingProxy, type CountingProxy } from './counting-proxy.ts';
import { spawnDataPlane, type SpawnedDataPlane, type SpawnOptions } from './dataplane.ts';
import {
  S3_ACCESS_KEY,
  S3_REGION,
  S3_SECRET_KEY,
  startRedisCluster,
  startS3Server,
  type RedisClusterHandle,
  type S3ServerHandle,
} from './services.ts';

export const BUCKET = 'blobcache-test';

export function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface ProductionStack {
  redis: RedisClusterHandle;
  s3: S3ServerHandle;
  /** Counts every request the data planes make to S3. */
  proxy: CountingProxy;
  /** Looks at the bucket directly (not through the proxy). */
  store: S3Store;
  /** A client of the Redis Cluster, to look at (or tamper with) what the data planes stored. */
  cluster: Cluster;
  dir: string;
  /** Environment for a data plane using this stack, plus overrides. */
  env(overrides?: Record<string, string>): Record<string, string>;
  spawn(overrides?: Record<string, string>, options?: SpawnOptions): Promise<SpawnedDataPlane>;
  stop(): Promise<void>;
}

/** A real Redis Cluster (3 + 3) and a real S3 server on loopback, plus a counting proxy. */
export async function startProductionStack(
  options: { maxMemory?: string } = {},
): Promise<ProductionStack> {
  const dir = await mkdtemp(join(tmpdir(), 'blobcache-stack-'));
  const redis = await startRedisCluster({ dir: join(dir, 'redis'), maxMemory: options.maxMemory });
  const s3 = await startS3Server({ dir: join(dir, 's3') });
  const client = s3Client(s3.endpoint);
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const proxy = await startCountingProxy(s3.endpoint);
  const cluster = new Cluster(
    redis.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    { slotsRefreshInterval: 2_000, retryDelayOnFailover: 300, retryDelayOnClusterDown: 300 },
  );
  cluster.on('error', () => undefined);
  const planes: SpawnedDataPlane[] = [];
  let spawned = 0;
  const env = (overrides: Record<string, string> = {}): Record<string, string> => ({
    BLOBCACHE_REDIS_NODES: redis.nodeList,
    BLOBCACHE_S3_BUCKET: BUCKET,
    BLOBCACHE_S3_ENDPOINT: proxy.url,
    AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
    AWS_REGION: S3_REGION,
    BLOBCACHE_DATA_DIR: join(dir, 'plane'),
    BLOBCACHE_LOG_LEVEL: 'info',
    ...overrides,
  });
  return {
    redis,
    s3,
    proxy,
    store: new S3Store({ client, bucket: BUCKET, prefix: 'blobs' }),
    cluster,
    dir,
    env,
    async spawn(overrides, options) {
      // Each process its own data directory (its spool): a directory serves one process.
      const own = { BLOBCACHE_DATA_DIR: join(dir, `plane-${spawned++}`), ...overrides };
      const plane = await spawnDataPlane(env(own), options);
      planes.push(plane);
      return plane;
    },
    async stop() {
      await Promise.all(planes.map((plane) => plane.stop('SIGKILL')));
      cluster.disconnect();
      await proxy.close();
      await s3.stop();
      await redis.stop();
      client.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
