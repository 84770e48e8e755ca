/**
 * Composition root of the data plane: with the commands in `commands/`, the only modules that
 * read `process.env`, construct SDK clients (through `clients.ts`) and exit the process.
 */
import type { Cluster } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'winston';
import { createHandler } from './app.ts';
import { MemoryLruStore } from './backends/memory-lru.ts';
import type { BlobService } from './blob/service.ts';
import { Uploader } from './blob/uploader.ts';
import { WriteBehindTiers } from './blob/write-behind.ts';
import { cleanSpool } from './blob/spool.ts';
import { WriteThroughTiers } from './blob/write-through.ts';
import { connectRedis, describeDurableStore, openDurableStore, redisTrouble } from './clients.ts';
import { ConfigError, type DataPlaneConfig } from './config.ts';
import { configFromEnvironment } from './config-file.ts';
import { lockDataDir } from './data-dir-lock.ts';
import { createLogger } from './logging.ts';
import { Metrics } from './metrics.ts';
import { RedisFastTier } from './redis/fast-tier.ts';
import { announceDeletion, subscribeDeletions } from './redis/invalidation.ts';
import { Journal } from './redis/journal.ts';
import { UploadLeases } from './redis/upload-leases.ts';
import { startServer } from './server.ts';

interface Tiers {
  blobs: BlobService;
  description: Record<string, unknown>;
  start(): void;
  /** Stops the tiers; uploads under way may be retried until `retryUntil` (ms since epoch). */
  close(retryUntil: number): Promise<void>;
}

async function buildTiers(
  config: DataPlaneConfig,
  metrics: Metrics,
  logger: Logger,
): Promise<Tiers> {
  const store = await openDurableStore(config, logger, metrics);
  const durable = describeDurableStore(config);
  if (config.redisNodes === undefined) {
    const cache = new MemoryLruStore({
      maxBytes: config.memoryCacheBytes,
      maxEntryBytes: config.memoryCacheMaxEntryBytes,
    });
    metrics.addScrapedGauges([
      {
        name: 'blobcache_fast_tier_bytes',
        help: 'Bytes held by the in-process fast tier.',
        read: () => Promise.resolve(cache.stats().bytes),
      },
    ]);
    return {
      blobs: new WriteThroughTiers({ cache, store, metrics, logger }),
      description: { fast: 'in-process LRU', durable, durability: 'write-through' },
      start: () => undefined,
      close: () => Promise.resolve(),
    };
  }
  const redis = await connectRedis({ ...config, redisNodes: config.redisNodes }, logger);
  const { setReadAheadBudget } = await import('./redis/chunks.ts');
  const readAhead = setReadAheadBudget(config.readAheadBytes);
  metrics.addScrapedGauges([
    {
      name: 'blobcache_read_ahead_bytes',
      help: 'Bytes of Redis chunks read ahead of their clients (bounded by BLOBCACHE_READ_AHEAD_BYTES).',
      read: () => Promise.resolve(readAhead.inUse()),
    },
  ]);
  const fast = new RedisFastTier({
    redis,
    chunkBytes: config.chunkBytes,
    replicaWaitMs: config.replicaWaitMs,
  });
  const journal = new Journal({
    redis,
    partitions: config.journalPartitions,
    replicaWaitMs: config.replicaWaitMs,
  });
  await journal.ensureGroups();
  const owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const leases = new UploadLeases(redis);
  const uploader = new Uploader({
    journal,
    fast,
    leases,
    store,
    metrics,
    logger,
    consumer: owner,
    concurrency: config.uploaders,
    claimIdleMs: config.journalClaimIdleMs,
    retryMaxMs: config.uploadRetryMaxMs,
    abandonAfterMs: config.uploadAbandonMs,
    cachedTtlMs: config.cachedTtlMs,
  });
  metrics.addScrapedGauges([
    {
      name: 'blobcache_journal_backlog',
      help: 'Blobs acknowledged but not yet in the durable tier.',
      read: async () => (await journal.backlog()).length,
    },
    {
      name: 'blobcache_journal_oldest_pending_seconds',
      help: 'Age of the oldest blob not yet in the durable tier.',
      read: async () => (await journal.backlog()).oldestAgeMs / 1000,
    },
    {
      name: 'blobcache_redis_evicted_keys',
      help: 'Keys Redis evicted (sum over masters, since their start).',
      read: () => evictedKeys(redis),
    },
  ]);
  const hot = new MemoryLruStore({
    maxBytes: config.memoryCacheBytes,
    maxEntryBytes: config.memoryCacheMaxEntryBytes,
    ttlMs: config.hotTtlMs,
  });
  metrics.addScrapedGauges([
    {
      name: 'blobcache_hot_tier_bytes',
      help: 'Bytes held by the in-process hot tier in front of Redis.',
      read: () => Promise.resolve(hot.stats().bytes),
    },
  ]);
  const blobs = new WriteBehindTiers({
    hot,
    announceDeletion: async (key) => {
      const { subscribers, confirmed } = await announceDeletion(redis, key, { timeoutMs: 2_000 });
      if (confirmed < subscribers) {
        logger.warn('Not every process confirmed a deletion; their hot tiers expire it by TTL', {
          key,
          subscribers,
          confirmed,
        });
      }
    },
    fast,
    store,
    journal,
    uploader,
    leases,
    metrics,
    logger,
    durability: config.durability,
    spoolDir: join(config.dataDir, 'spool'),
    owner,
    fillWaitMs: config.fillWaitMs,
    fillLeaseMs: config.fillLeaseMs,
    negativeCacheMs: config.negativeCacheMs,
    cachedTtlMs: config.cachedTtlMs,
  });
  const deletions = await subscribeDeletions(redis, {
    consumer: owner,
    onDeleted: (key) => blobs.forget(key),
    onError: redisTrouble(logger, 'invalidation subscriber'),
  });
  return {
    blobs,
    description: {
      fast: `redis cluster ${config.redisNodes.join(',')}`,
      durable,
      durability: config.durability,
      consumer: owner,
    },
    start: () => uploader.start(),
    async close(retryUntil) {
      await uploader.stop(retryUntil);
      await deletions.close();
      await redis.quit();
    },
  };
}

async function evictedKeys(redis: Cluster): Promise<number> {
  let total = 0;
  for (const node of redis.nodes('master')) {
    const stats = await node.info('stats');
    total += Number(/evicted_keys:(\d+)/.exec(stats)?.[1] ?? 0);
  }
  return total;
}

async function main(): Promise<void> {
  const config = configFromEnvironment(process.env);
  const logger = createLogger({ level: config.logLevel });
  const metrics = new Metrics({ processMetrics: true });
  // Before anything touches the directory: a second process would empty tmp/ and spool/
  // under the first one's uploads.
  const lock = await lockDataDir(config.dataDir);
  await cleanSpool(join(config.dataDir, 'spool'));
  const tiers = await buildTiers(config, metrics, logger);
  let draining = false;
  const app = createHandler({
    blobs: tiers.blobs,
    logger,
    metrics,
    auth: { readToken: config.readToken, writeToken: config.writeToken },
    maxBlobBytes: config.maxBlobBytes,
    isDraining: () => draining,
  });
  const running = await startServer(app, { ...config, logger, metrics });
  tiers.start();
  // Handlers first: a signal right after the start line must drain, not kill.
  const shutdown = (signal: string): void => {
    if (draining) return;
    draining = true;
    logger.info('Draining before shutdown', { signal, graceMs: config.shutdownGraceMs });
    const graceEnds = Date.now() + config.shutdownGraceMs;
    running
      .close()
      .then(() => tiers.close(graceEnds))
      .then(() => lock.release())
      .then(
        () => {
          logger.info('Stopped the data plane');
          logger.on('finish', () => process.exit(0));
          logger.end();
        },
        (error: unknown) => {
          logger.error('Failed to stop cleanly', { error: String(error) });
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  logger.info('Started the data plane', {
    url: `http://${running.address.address}:${running.address.port}`,
    tiers: tiers.description,
    auth: { read: config.readToken !== undefined, write: config.writeToken !== undefined },
  });
}

main().catch((error: unknown) => {
  const message =
    error instanceof ConfigError ? `Invalid configuration: ${error.message}` : String(error);
  process.stderr.write(
    `${JSON.stringify({ level: 'error', message, service: 'blobcache-dataplane' })}\n`,
  );
  process.exit(1);
});
