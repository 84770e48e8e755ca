import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { defaulted } from '../api/v1alpha1/defaults.generated.ts';
import { type BlobCache } from '../api/v1alpha1/types.generated.ts';
import { TYPES } from '../kube/access.ts';
import type { KubeClient } from '../kube/client.ts';
import type { OperatorMetrics } from '../metrics.ts';
import type { RedisAdmin } from '../redis/admin.ts';
import type { PhaseResult, ReconcileContext } from './context.ts';
import { TerminalError } from './errors.ts';
import { childrenPhase } from './phases/children.ts';
import { membershipPhase } from './phases/membership.ts';
import type { Phase } from './phases/phase.ts';
import { prunePhase } from './phases/prune.ts';
import { secretsPhase } from './phases/secrets.ts';
import { writeStatus } from './phases/status.ts';
import { validatePhase } from './phases/validate.ts';

export interface ReconcileKey {
  namespace: string;
  name: string;
}

export interface ReconcileResult extends PhaseResult {
  /** The BlobCache no longer exists (or is being deleted): nothing to come back for. */
  gone?: true;
}

export interface ReconcileDeps {
  kube: KubeClient;
  redis: RedisAdmin;
  logger: Logger;
  now?: () => Date;
  /** @default PHASES */
  phases?: readonly Phase[];
  /** Where per-BlobCache gauges go (what membership found of the Redis Cluster). */
  metrics?: OperatorMetrics;
}

/**
 * The phases of a reconcile, in order. Membership runs before prune because it may hold
 * deletions back; a backfill phase belongs between them. The status is written after all
 * of them, and also when one fails.
 */
export const PHASES: readonly Phase[] = [
  validatePhase,
  secretsPhase,
  childrenPhase,
  membershipPhase,
  prunePhase,
];

/** The earliest requeue any phase asked for. */
export function combine(results: readonly PhaseResult[]): PhaseResult {
  const delays = results.flatMap((result) =>
    result.requeueAfterMs === undefined ? [] : [result.requeueAfterMs],
  );
  return delays.length === 0 ? {} : { requeueAfterMs: Math.min(...delays) };
}

/**
 * Converges everything a BlobCache owns to its spec, phase by phase, then writes its
 * status. Level-triggered: it reads the world (from the informers' caches) and never looks
 * at what event caused it, so running it twice in a row changes nothing the second time.
 * Throws what a phase threw; a TerminalError only after recording it in the status.
 */
export async function reconcile(deps: ReconcileDeps, key: ReconcileKey): Promise<ReconcileResult> {
  const { kube, logger } = deps;
  const found = await kube.get<BlobCache>({ ...TYPES.BlobCache, ...key });
  if (found === null || found.metadata.deletionTimestamp !== undefined) {
    // Deleted: owner references let the garbage collector remove the children.
    deps.metrics?.forget(key);
    return { gone: true };
  }
  const blobCache = defaulted(found);
  const log = logger.child({ namespace: key.namespace, blobcache: key.name });
  const ctx: ReconcileContext = {
    blobCache,
    kube,
    redis: deps.redis,
    log,
    now: deps.now ?? (() => new Date()),
    status: structuredClone(found.status ?? {}),
    wanted: new Set(),
    fresh: new Map(),
    holds: [],
    missingSecrets: [],
    async event(type, reason, message) {
      await kube
        .recordEvent(found as KubernetesObject, { type, reason, message })
        .catch((error: unknown) =>
          log.warn('Failed to record an Event', { reason, error: String(error) }),
        );
    },
  };
  const results: PhaseResult[] = [];
  let failure: unknown;
  for (const phase of deps.phases ?? PHASES) {
    try {
      results.push(await phase.run(ctx));
    } catch (error) {
      failure = error;
      log.debug('Phase failed', { phase: phase.name, error: String(error) });
      break;
    }
  }
  const terminal = failure instanceof TerminalError ? failure : undefined;
  if (ctx.membership !== undefined) deps.metrics?.redisCluster(key, ctx.membership);
  try {
    await writeStatus(ctx, terminal);
  } catch (error) {
    // The phase's failure says more; without one, the status write's failure is the news.
    failure ??= error;
  }
  if (failure !== undefined) {
    throw failure instanceof Error ? failure : new Error('A phase failed', { cause: failure });
  }
  return combine(results);
}
