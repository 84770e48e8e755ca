/**
 * A cache on loopback for the cluster tests: Redis pods (not clustered: the operator's
 * membership code does that), an S3 server with the bucket, and data planes in their own
 * processes pointed at both.
 */
import { CreateBucketCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MembershipSpec } from '../../operator/src/redis/model.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import { BUCKET, s3Client } from '../harness/production.ts';
import {
  S3_ACCESS_KEY,
  S3_REGION,
  S3_SECRET_KEY,
  startS3Server,
  type S3ServerHandle,
} from '../harness/services.ts';
import { TestOperator } from './test-operator.ts';

export const ZONES = ['a', 'b', 'c'];

/** Zones as a per-shard spread would place pods: a shard's pods in different zones. */
export const spreadZones = (shard: number, ordinal: number) => ZONES[(shard + ordinal) % 3];

export class ClusterStack {
  readonly redis: LoopbackRedis;
  readonly operator: TestOperator;
  readonly s3: S3ServerHandle;
  readonly dir: string;
  private readonly planes: SpawnedDataPlane[] = [];
  private readonly client: ReturnType<typeof s3Client>;

  private constructor(
    dir: string,
    redis: LoopbackRedis,
    s3: S3ServerHandle,
    operator: TestOperator,
  ) {
    this.dir = dir;
    this.redis = redis;
    this.s3 = s3;
    this.operator = operator;
    this.client = s3Client(s3.endpoint);
  }

  static async start(
    spec: MembershipSpec,
    options: { maxMemory?: string } = {},
  ): Promise<ClusterStack> {
    const dir = await mkdtemp(join(tmpdir(), 'blobcache-cluster-'));
    const redis = await LoopbackRedis.create({
      dir: join(dir, 'redis'),
      password: 'cluster-test-password',
      zoneOf: spreadZones,
      ...(options.maxMemory === undefined ? {} : { maxMemory: options.maxMemory }),
    });
    const s3 = await startS3Server({ dir: join(dir, 's3') });
    const client = s3Client(s3.endpoint);
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    return new ClusterStack(dir, redis, s3, new TestOperator(redis, spec));
  }

  /** Starts the spec's pods and lets the operator form the cluster. */
  async create(): Promise<void> {
    const { shards, replicasPerShard } = this.operator.spec;
    for (let shard = 0; shard < shards; shard++)
      await this.redis.addPods(shard, 1 + replicasPerShard);
    await this.operator.converge();
  }

  /** A data plane in WriteBehind mode on this cluster and bucket. */
  async dataPlane(): Promise<SpawnedDataPlane> {
    const plane = await spawnDataPlane({
      BLOBCACHE_REDIS_NODES: this.redis.nodeList(),
      BLOBCACHE_REDIS_PASSWORD: this.redis.password,
      BLOBCACHE_DURABILITY: 'WriteBehind',
      BLOBCACHE_S3_BUCKET: BUCKET,
      BLOBCACHE_S3_ENDPOINT: this.s3.endpoint,
      AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
      AWS_REGION: S3_REGION,
      BLOBCACHE_DATA_DIR: join(this.dir, `plane-${this.planes.length}`),
      BLOBCACHE_LOG_LEVEL: 'info',
      // Retry uploads quickly once S3 is back.
      BLOBCACHE_UPLOAD_RETRY_MAX_MS: '1000',
    });
    this.planes.push(plane);
    return plane;
  }

  /**
   * Whether the S3 server's directory holds the blob: also answers while the server is
   * down (versitygw keeps each object as a file under the bucket's directory).
   */
  storedInS3(md5: string): boolean {
    return existsSync(join(this.dir, 's3', 'data', BUCKET, 'blobs', md5.slice(0, 2), md5));
  }

  /** Whether S3 has the blob (looked up directly, not through a data plane). */
  async inS3(md5: string): Promise<boolean> {
    try {
      const key = `blobs/${md5.slice(0, 2)}/${md5}`;
      await this.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.planes.map((plane) => plane.stop('SIGKILL')));
    await this.operator.close();
    await this.redis.stop();
    await this.s3.stop();
    this.client.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}
