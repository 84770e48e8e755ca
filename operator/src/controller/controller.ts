import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { DEFAULT_CONFIG } from '../config.ts';
import { WATCHED } from '../kube/access.ts';
import { withCache, type ObjectCache } from '../kube/cache.ts';
import type { KubeClient } from '../kube/client.ts';
import { fenced, LeadershipLostError } from '../kube/fence.ts';
import type { OperatorMetrics } from '../metrics.ts';
import type { RedisAdmin } from '../redis/admin.ts';
import { TerminalError } from './errors.ts';
import type { Phase } from './phases/phase.ts';
import { reconcile } from './reconcile.ts';
import { startWatches } from './watches.ts';
import { WorkQueue } from './work-queue.ts';

export interface Controller {
  /** Resolves once the caches are filled and the workers run. */
  started: Promise<void>;
  /** The informers' objects (what reconciles read). */
  cache: ObjectCache;
  /** Keys queued or being reconciled right now. */
  pending(): number;
  /** Milliseconds until `key` is reconciled again on a timer (requeue or retry), if at all. */
  dueIn(key: string): number | undefined;
  /** Stops watching, lets reconciles under way finish (their writes may be refused). */
  stop(): Promise<void>;
}

export interface ControllerOptions {
  config: KubeConfig;
  /** The client that talks to the API server; reads are routed to the caches here. */
  kube: KubeClient;
  redis: RedisAdmin;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** Writes are refused once this says no (see LeaderElector.isLeader). @default always */
  isLeader?: () => boolean;
  /** @default DEFAULT_CONFIG.workers */
  workers?: number;
  /** Every BlobCache is reconciled at least this often. @default DEFAULT_CONFIG.resyncMs */
  resyncMs?: number;
  /** Back-off of failed reconciles. @default DEFAULT_CONFIG's retry delays */
  retry?: { baseDelayMs: number; maxDelayMs: number };
  /** @default PHASES (tests swap in their own) */
  phases?: readonly Phase[];
}

/**
 * Watches BlobCaches and everything they own into caches, and reconciles each key from a
 * work queue: a failure retries with back-off, a TerminalError waits for the next change,
 * a success comes back when its phases asked or at the resync period.
 */
export function startController(options: ControllerOptions): Controller {
  const { config, logger, metrics } = options;
  const resyncMs = options.resyncMs ?? DEFAULT_CONFIG.resyncMs;
  const queue = new WorkQueue(
    options.retry ?? {
      baseDelayMs: DEFAULT_CONFIG.retryBaseDelayMs,
      maxDelayMs: DEFAULT_CONFIG.retryMaxDelayMs,
    },
  );
  const watches = startWatches({
    config,
    watched: WATCHED,
    enqueue: (key) => queue.add(key),
    logger,
  });
  const isLeader = options.isLeader ?? (() => true);
  const kube = fenced(withCache(options.kube, watches.cache), isLeader);
  const deps = { kube, redis: options.redis, logger, phases: options.phases, metrics };

  const work = async (key: string): Promise<void> => {
    const [namespace = '', name = ''] = key.split('/');
    const started = performance.now();
    try {
      const result = await reconcile(deps, { namespace, name });
      if (result.gone === true) {
        queue.drop(key);
      } else {
        queue.forget(key);
        queue.addAfter(key, Math.min(result.requeueAfterMs ?? resyncMs, resyncMs));
      }
      metrics?.reconciles.inc({ result: 'success' });
    } catch (error) {
      if (error instanceof LeadershipLostError) {
        metrics?.reconciles.inc({ result: 'fenced' });
        return;
      }
      if (error instanceof TerminalError) {
        queue.forget(key);
        metrics?.reconciles.inc({ result: 'terminal' });
        logger.warn('The BlobCache spec cannot work; waiting for it to change', {
          key,
          reason: error.reason,
          error: error.message,
        });
        return;
      }
      const retryInMs = queue.addRateLimited(key);
      metrics?.reconciles.inc({ result: 'error' });
      logger.warn('Failed to reconcile a BlobCache; will retry', {
        key,
        retryInMs,
        error: String(error),
      });
    } finally {
      metrics?.reconcileSeconds.observe((performance.now() - started) / 1000);
      queue.done(key);
    }
  };
  const worker = async (): Promise<void> => {
    for (let key = await queue.next(); key !== undefined; key = await queue.next()) {
      if (!isLeader()) break;
      await work(key);
    }
  };
  let workers: Promise<void>[] = [];
  let stopped = false;
  // Reads before the caches are filled could miss objects that exist.
  const started = watches.synced.then(() => {
    if (stopped) return;
    workers = Array.from({ length: options.workers ?? DEFAULT_CONFIG.workers }, () => worker());
    logger.info('Caches filled; reconciling', { workers: workers.length });
  });
  return {
    started,
    cache: watches.cache,
    pending: () => queue.pending,
    dueIn: (key) => queue.dueIn(key),
    async stop() {
      stopped = true;
      queue.shutdown();
      await watches.stop();
      await Promise.all(workers);
    },
  };
}
