/**
 * Composition root of the data plane: the only module that reads `process.env`, touches
 * the file named by `BLOBCACHE_CONFIG_FILE`, builds the tiers and exits the process.
 */
import { readFileSync } from 'node:fs';
import { createApp } from './app.ts';
import { FileSystemStore } from './backends/filesystem.ts';
import { MemoryLruStore } from './backends/memory-lru.ts';
import { WriteThroughTiers } from './blob/write-through.ts';
import { ConfigError, loadConfig, type DataPlaneConfig } from './config.ts';
import { createLogger } from './logging.ts';
import { Metrics } from './metrics.ts';
import { startServer } from './server.ts';

function readConfig(): DataPlaneConfig {
  const fileName = process.env.BLOBCACHE_CONFIG_FILE;
  let fileText: string | undefined;
  if (fileName !== undefined && fileName !== '') {
    try {
      fileText = readFileSync(fileName, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `BLOBCACHE_CONFIG_FILE: cannot read ${fileName}: ${(error as Error).message}`,
      );
    }
  }
  return loadConfig({ env: process.env, fileText, fileName });
}

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger({ level: config.logLevel });
  const cache = new MemoryLruStore({
    maxBytes: config.memoryCacheBytes,
    maxEntryBytes: config.memoryCacheMaxEntryBytes,
  });
  const metrics = new Metrics({ processMetrics: true, fastTierBytes: () => cache.stats().bytes });
  const store = await FileSystemStore.open(config.dataDir);
  const blobs = new WriteThroughTiers({ cache, store, metrics, logger });
  let draining = false;
  const app = createApp({
    blobs,
    logger,
    metrics,
    auth: { readToken: config.readToken, writeToken: config.writeToken },
    maxBlobBytes: config.maxBlobBytes,
    isDraining: () => draining,
  });
  const running = await startServer(app, { ...config, logger });
  logger.info('Started the data plane', {
    url: `http://${running.address.address}:${running.address.port}`,
    dataDir: config.dataDir,
    tiers: 'embedded',
    auth: { read: config.readToken !== undefined, write: config.writeToken !== undefined },
  });
  const shutdown = (signal: string): void => {
    if (draining) return;
    draining = true;
    logger.info('Draining before shutdown', { signal, graceMs: config.shutdownGraceMs });
    running.close().then(
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
}

main().catch((error: unknown) => {
  const message =
    error instanceof ConfigError ? `Invalid configuration: ${error.message}` : String(error);
  process.stderr.write(
    `${JSON.stringify({ level: 'error', message, service: 'blobcache-dataplane' })}\n`,
  );
  process.exit(1);
});
