import {
  V1MicroTime,
  type CoordinationV1Api,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { statusCode } from '../kube/client.ts';

export interface LeaderElectionOptions {
  /** The client for Leases (built in the composition root). */
  leases: CoordinationV1Api;
  namespace: string;
  leaseName: string;
  identity: string;
  /** How long others trust a holder that stopped renewing. */
  leaseDurationSeconds: number;
  /** Stop leading when no renewal succeeded for this long; less than the lease duration. */
  renewDeadlineMs: number;
  /** Time between renewals (and, with up to 20 % jitter, between acquisition attempts). */
  retryPeriodMs: number;
  logger: Logger;
  /** Monotonic milliseconds. @default performance.now */
  now?: () => number;
}

export interface LeadershipCallbacks {
  /** This instance holds the Lease: start working. */
  onStartedLeading(): void;
  /**
   * The renew deadline passed: stop working now (writes are already refused, see
   * isLeader). The elector tries to acquire again only after this settles.
   */
  onStoppedLeading(): Promise<void> | void;
}

export interface LeaderElector {
  /**
   * True while the last successful renewal started less than the renew deadline ago.
   * Computed from the clock at each call, so it turns false on time even if a timer runs late.
   */
  isLeader(): boolean;
  run(callbacks: LeadershipCallbacks): void;
  /** Stops trying; if this instance holds the Lease, hands it back so another takes over at once. */
  stop(): Promise<void>;
}

/**
 * Leader election on a coordination.k8s.io Lease with client-go's semantics: the holder
 * renews every retry period and keeps leading through failed renewals (5xx, 409) until the
 * renew deadline; another holder's lease counts as expired only after the lease duration
 * has passed, on this process's monotonic clock, since this process last saw the Lease
 * change (its renewTime is never compared with the local clock, so skew cannot make two
 * leaders); writes carry the resourceVersion, so two candidates cannot both win.
 */
export function createLeaderElector(options: LeaderElectionOptions): LeaderElector {
  const api = options.leases;
  const { namespace, identity, logger, leaseName: name } = options;
  const now = options.now ?? (() => performance.now());
  let observed: { lease: V1Lease; at: number } | undefined;
  let leaderUntil = -Infinity;
  let leading = false;
  let stopped = false;
  let wake: (() => void) | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> = Promise.resolve();
  let loop: Promise<void> = Promise.resolve();

  const isLeader = (): boolean => leading && now() < leaderUntil;
  // Lease times are MicroTime: a plain Date serializes with milliseconds, which the API
  // server refuses. Read back they are strings. Only this instance's own times are written;
  // none is ever compared with the local clock.
  const micro = (time?: Date | string): V1MicroTime =>
    new V1MicroTime(time === undefined ? Date.now() : new Date(time).getTime());
  const recordFor = (previous: V1LeaseSpec | undefined): V1LeaseSpec => {
    const renewing = previous?.holderIdentity === identity;
    return {
      holderIdentity: identity,
      leaseDurationSeconds: options.leaseDurationSeconds,
      acquireTime: renewing && previous?.acquireTime ? micro(previous.acquireTime) : micro(),
      renewTime: micro(),
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (renewing ? 0 : 1),
    };
  };
  const write = async (lease: V1Lease, started: number): Promise<void> => {
    const body = { ...lease, spec: recordFor(lease.spec) };
    // replace carries the resourceVersion: a concurrent writer makes this fail with 409.
    const written = await api.replaceNamespacedLease({ name, namespace, body });
    observed = { lease: written, at: started };
  };

  /** One attempt: true when this instance holds the Lease afterwards. */
  const tryAcquireOrRenew = async (started: number): Promise<boolean> => {
    if (isLeader() && observed !== undefined) {
      try {
        await write(observed.lease, started); // fast path: no read while leading
        return true;
      } catch (error) {
        logger.warn('Failed to renew the leader Lease; reading it', { error: String(error) });
      }
    }
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      const body = { metadata: { name, namespace }, spec: recordFor(undefined) };
      const created = await api.createNamespacedLease({ namespace, body: { ...body } });
      observed = { lease: created, at: started };
      return true;
    }
    if (lease.metadata?.resourceVersion !== observed?.lease.metadata?.resourceVersion) {
      observed = { lease, at: now() };
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const duration = (lease.spec?.leaseDurationSeconds ?? options.leaseDurationSeconds) * 1000;
    if (holder !== '' && holder !== identity && now() < observed!.at + duration) return false;
    await write(lease, started);
    return true;
  };

  const loseLeadership = (): void => {
    if (!leading) return;
    leading = false;
    clearTimeout(deadlineTimer);
    logger.warn('Stopped leading: the leader Lease could not be renewed in time', {
      identity,
      renewDeadlineMs: options.renewDeadlineMs,
    });
    stopping = Promise.resolve(callbacks?.onStoppedLeading()).catch((error: unknown) => {
      logger.error('Failed to stop working after losing leadership', { error: String(error) });
    });
  };
  let callbacks: LeadershipCallbacks | undefined;

  const attempt = async (): Promise<void> => {
    await stopping;
    const started = now();
    let held = false;
    try {
      held = await tryAcquireOrRenew(started);
    } catch (error) {
      if (statusCode(error) !== 409) {
        logger.warn('Failed to acquire or renew the leader Lease', { error: String(error) });
      }
    }
    if (stopped) return;
    if (held) {
      leaderUntil = started + options.renewDeadlineMs;
      clearTimeout(deadlineTimer);
      deadlineTimer = setTimeout(() => {
        if (now() >= leaderUntil) loseLeadership();
      }, leaderUntil - now());
      if (!leading) {
        leading = true;
        logger.info('Became the leader', { lease: `${namespace}/${name}`, identity });
        callbacks?.onStartedLeading();
      }
    } else if (leading && now() >= leaderUntil) {
      loseLeadership();
    }
  };

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  return {
    isLeader,
    run(given) {
      callbacks = given;
      loop = (async () => {
        while (!stopped) {
          await attempt();
          if (stopped) break;
          const jitter = leading ? 0 : Math.random() * 0.2 * options.retryPeriodMs;
          await pause(options.retryPeriodMs + jitter);
        }
      })();
    },
    async stop() {
      stopped = true;
      wake?.();
      clearTimeout(deadlineTimer);
      await loop;
      const held = leading;
      leading = false;
      const lease = observed?.lease;
      if (!held || lease?.spec?.holderIdentity !== identity) return;
      try {
        await api.replaceNamespacedLease({
          name,
          namespace,
          body: {
            ...lease,
            spec: { ...lease.spec, holderIdentity: '', renewTime: micro(), acquireTime: micro() },
          },
        });
        logger.info('Released the leader Lease', { identity });
      } catch (error) {
        logger.warn('Failed to release the leader Lease', { error: String(error) });
      }
    },
  };
}
