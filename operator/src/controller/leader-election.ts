import {
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { statusCode } from '../kube/client.ts';

export interface LeaderElectionOptions {
  config: KubeConfig;
  namespace: string;
  /** @default 'blobcache-operator' */
  leaseName?: string;
  identity: string;
  /** @default 15 */
  leaseDurationSeconds?: number;
  /** @default 5000 */
  renewIntervalMs?: number;
  logger: Logger;
}

export interface LeaderElection {
  /** Resolves once this instance holds the lease. */
  acquired: Promise<void>;
  /** Resolves if leadership is lost after it was held (the process should stop its work). */
  lost: Promise<void>;
  /** Stops renewing and gives the lease up so another instance takes over at once. */
  release(): Promise<void>;
}

/**
 * Leader election on a coordination.k8s.io Lease, with optimistic concurrency (the
 * Lease's resourceVersion): only the holder renews; others take it once it expired.
 */
export function electLeader(options: LeaderElectionOptions): LeaderElection {
  const api = options.config.makeApiClient(CoordinationV1Api);
  const name = options.leaseName ?? 'blobcache-operator';
  const { namespace, identity, logger } = options;
  const duration = options.leaseDurationSeconds ?? 15;
  const renewMs = options.renewIntervalMs ?? 5_000;
  let leading = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let onAcquired!: () => void;
  let onLost!: () => void;
  const acquired = new Promise<void>((resolve) => (onAcquired = resolve));
  const lost = new Promise<void>((resolve) => (onLost = resolve));

  // Lease times are MicroTime: a plain Date serializes with milliseconds, which the API
  // server refuses, so every time sent goes through V1MicroTime.
  // Read back, they arrive as strings (the client does not parse MicroTime): accept both.
  const millis = (time: Date | string | undefined): number =>
    time === undefined ? 0 : new Date(time).getTime();
  const micro = (time?: Date | string): V1MicroTime =>
    time === undefined ? new V1MicroTime() : new V1MicroTime(millis(time));
  const spec = (acquireTime: Date | undefined, transitions: number): V1Lease['spec'] => ({
    holderIdentity: identity,
    leaseDurationSeconds: duration,
    acquireTime: micro(acquireTime),
    renewTime: micro(),
    leaseTransitions: transitions,
  });

  const attempt = async (): Promise<boolean> => {
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
      await api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: spec(undefined, 0) },
      });
      return true;
    }
    const holder = lease.spec?.holderIdentity;
    const renewed = millis(lease.spec?.renewTime);
    const expired = renewed + (lease.spec?.leaseDurationSeconds ?? duration) * 1000 < Date.now();
    if (holder !== identity && holder !== undefined && holder !== '' && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    lease.spec = spec(holder === identity ? lease.spec?.acquireTime : undefined, transitions);
    // replace carries resourceVersion: a concurrent writer makes this fail with 409.
    await api.replaceNamespacedLease({ name, namespace, body: lease });
    return true;
  };

  const tick = async (): Promise<void> => {
    if (stopped) return;
    let held = false;
    try {
      held = await attempt();
    } catch (error) {
      logger.warn('Failed to acquire or renew the leader Lease', { error: String(error) });
    }
    if (held && !leading) {
      leading = true;
      logger.info('Became the leader', { lease: `${namespace}/${name}`, identity });
      onAcquired();
    } else if (!held && leading) {
      leading = false;
      logger.warn('Lost the leader Lease', { identity });
      onLost();
      return;
    }
    timer = setTimeout(() => void tick(), leading ? renewMs : Math.max(1_000, renewMs / 2));
  };
  void tick();

  return {
    acquired,
    lost,
    async release() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      if (!leading) return;
      leading = false;
      try {
        const lease = await api.readNamespacedLease({ name, namespace });
        if (lease.spec?.holderIdentity === identity) {
          lease.spec = {
            ...lease.spec,
            holderIdentity: '',
            acquireTime: micro(lease.spec.acquireTime),
            renewTime: micro(new Date(0)),
          };
          await api.replaceNamespacedLease({ name, namespace, body: lease });
        }
      } catch (error) {
        logger.warn('Failed to release the leader Lease', { error: String(error) });
      }
    },
  };
}
