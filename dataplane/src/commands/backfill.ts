/**
 * The backfill command (`npm run backfill -- --max-bytes 20Gi`, or the image's `backfill`
 * entry point, which a backfill Job runs): warms a cold Redis fast tier with the most
 * recent blobs of the durable tier, through the data plane's own fill engine. A composition
 * root like main.ts: it reads `process.env` and argv, builds the clients and exits.
 *
 * Exit codes: 0 done (blobs damaged or gone in the durable tier are skipped and counted),
 * 1 some blob could not be loaded or a tier failed (a Job retries; a rerun skips what is
 * cached), 2 bad settings.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { progressLine, type BackfillReport } from '../backfill/progress.ts';
import { runBackfill } from '../backfill/run.ts';
import { BACKFILL_USAGE, parseBackfillSettings } from '../backfill/settings.ts';
import { FillCoordinator } from '../blob/fills.ts';
import { connectRedis, describeDurableStore, openDurableStore } from '../clients.ts';
import { ConfigError } from '../config.ts';
import { configFromEnvironment } from '../config-file.ts';
import { createLogger } from '../logging.ts';
import { Metrics } from '../metrics.ts';
import { setReadAheadBudget } from '../redis/chunks.ts';
import { RedisFastTier } from '../redis/fast-tier.ts';
import { backfillProgressKey, blobKeys, INCARNATION_KEY } from '../redis/keys.ts';

/** Progress stays readable this long after the last write (a week: the operator reads it). */
const PROGRESS_TTL_MS = 7 * 24 * 3_600_000;

async function main(): Promise<number> {
  const settings = parseBackfillSettings(process.argv.slice(2), process.env);
  if (settings === null) {
    process.stdout.write(BACKFILL_USAGE);
    return 0;
  }
  const config = configFromEnvironment(process.env);
  if (config.redisNodes === undefined)
    throw new ConfigError('BLOBCACHE_REDIS_NODES: the backfill loads a Redis fast tier; set it');
  const logger = createLogger({
    level: config.logLevel,
    format: 'text',
    service: 'blobcache-backfill',
  });
  const metrics = new Metrics();
  const store = await openDurableStore(config, logger, metrics, { attach: true });
  const redis = await connectRedis({ ...config, redisNodes: config.redisNodes }, logger);
  try {
    setReadAheadBudget(config.readAheadBytes);
    const fast = new RedisFastTier({
      redis,
      chunkBytes: config.chunkBytes,
      replicaWaitMs: config.replicaWaitMs,
    });
    const fills = new FillCoordinator({
      fast,
      store,
      metrics,
      logger,
      owner: `backfill-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
      fillWaitMs: config.fillWaitMs,
      fillLeaseMs: config.fillLeaseMs,
      negativeCacheMs: config.negativeCacheMs,
      cachedTtlMs: config.cachedTtlMs,
    });
    const incarnation = (await redis.get(INCARNATION_KEY)) ?? '';
    logger.info('Started the backfill', {
      durable: describeDurableStore(config),
      redis: config.redisNodes.join(','),
      incarnation,
      ...settings,
    });
    const report = await runBackfill(
      {
        store,
        fill: (key) => fills.fill(key),
        isCached: async (key) => (await redis.exists(blobKeys.manifest(key))) === 1,
        publish: async (progress: BackfillReport) => {
          const key = backfillProgressKey(progress.partition);
          await redis.set(key, JSON.stringify(progress), 'PX', PROGRESS_TTL_MS);
        },
        print: (progress) => logger.info(progressLine(progress)),
        logger,
      },
      { ...settings, incarnation },
    );
    return report.state === 'done' ? 0 : 1;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const bad = error instanceof ConfigError;
    process.stderr.write(
      `${bad ? 'Invalid settings' : 'The backfill failed'}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = bad ? 2 : 1;
  },
);
