/**
 * The SDK clients of the data plane's tiers, built from its configuration. Only entry
 * points (main.ts, commands/) call these: library code takes what they build.
 */
import type { Cluster } from 'ioredis';
import type { Logger } from 'winston';
import { FileSystemStore, type FileSystemStoreOptions } from './backends/filesystem.ts';
import type { BlobStore } from './blob/store.ts';
import type { DataPlaneConfig } from './config.ts';
import type { Metrics } from './metrics.ts';

/**
 * The durable tier: S3 when a bucket is configured, else the data directory (`attach`: to
 * read a directory whose lock another process holds, leaving its temp files alone).
 */
export async function openDurableStore(
  config: DataPlaneConfig,
  logger: Logger,
  metrics: Metrics,
  options: { attach?: boolean } = {},
): Promise<BlobStore> {
  if (config.s3Bucket === undefined) {
    const open = (root: string, storeOptions: FileSystemStoreOptions) =>
      options.attach === true
        ? FileSystemStore.attach(root, storeOptions)
        : FileSystemStore.open(root, storeOptions);
    return open(config.dataDir, {
      onQuarantine: (key, detail) => {
        metrics.quarantined.inc({ tier: 'durable' });
        logger.error('Quarantined a damaged blob: removed the copy that does not hash to its key', {
          key,
          detail,
        });
      },
    });
  }
  // Loaded only when used: the AWS SDK alone adds ~35 MiB to the resident set, which the
  // embedded default should not pay for.
  const { S3Client } = await import('@aws-sdk/client-s3');
  const { S3Store } = await import('./backends/s3.ts');
  const { s3SdkLogger } = await import('./backends/s3-logger.ts');
  const client = new S3Client({
    region: config.s3Region,
    ...(config.s3Endpoint === undefined ? {} : { endpoint: config.s3Endpoint }),
    forcePathStyle: config.s3ForcePathStyle ?? config.s3Endpoint !== undefined,
    // We verify MD5 ourselves and send Content-MD5 per part; the SDK's default streaming
    // checksums add aws-chunked framing that several S3-compatible servers mishandle.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 60_000 },
    // Without a logger the SDK writes its warnings (e.g. a failed streaming upload, which it
    // cannot retry) to the console, outside the JSON log.
    logger: s3SdkLogger(logger),
  });
  return new S3Store({ client, bucket: config.s3Bucket, prefix: config.s3Prefix });
}

/** How the durable tier is named in logs. */
export function describeDurableStore(config: DataPlaneConfig): string {
  return config.s3Bucket === undefined
    ? `directory ${config.dataDir}`
    : `s3://${config.s3Bucket}/${config.s3Prefix}`;
}

/** A client of the Redis Cluster at `nodes`; its connection trouble is logged as warnings. */
export async function connectRedis(
  config: DataPlaneConfig & { redisNodes: string[] },
  logger: Logger,
): Promise<Cluster> {
  const { Cluster } = await import('ioredis');
  const redis = new Cluster(
    config.redisNodes.map((node) => {
      const [host, port] = node.split(':');
      return { host: host!, port: Number(port) };
    }),
    {
      slotsRefreshInterval: 5_000,
      retryDelayOnFailover: 300,
      retryDelayOnClusterDown: 300,
      maxRedirections: 32,
      redisOptions: {
        ...(config.redisPassword === undefined ? {} : { password: config.redisPassword }),
      },
    },
  );
  // ioredis reports connection trouble as events; without listeners it prints to stderr,
  // outside the JSON log. A failover or a restarting node is expected trouble: warn.
  redis.on('error', redisTrouble(logger, 'cluster'));
  redis.on('node error', redisTrouble(logger, 'node'));
  return redis;
}

export function redisTrouble(logger: Logger, source: string) {
  return (error: Error, node?: string): void => {
    logger.warn('Redis reported an error', { source, node, error: error.message });
  };
}
