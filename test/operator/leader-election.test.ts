import { CoordinationV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { startController, type Controller } from '../../operator/src/controller/controller.ts';
import {
  createLeaderElector,
  type LeaderElector,
} from '../../operator/src/controller/leader-election.ts';
import { makeKubeClient } from '../../operator/src/kube/client.ts';
import { OperatorMetrics } from '../../operator/src/metrics.ts';
import { startApiProxy, type ApiProxy } from '../harness/api-proxy.ts';
import type { ControlPlane } from '../harness/control-plane.ts';
import { eventually } from '../harness/eventually.ts';
import {
  createBlobCache,
  freshNamespace,
  kubeConfigFor,
  objectExists,
  startControlPlaneWithCrd,
} from '../harness/kube.ts';
import { silentLogger as logger } from '../harness/logger.ts';
import { noRedis } from './stub-redis.ts';

const LEASE_SECONDS = 3;
const RENEW_DEADLINE_MS = 2_000;
const RETRY_MS = 200;

interface Candidate {
  elector: LeaderElector;
  /** performance.now() of each start and stop of leading. */
  startedAt: number[];
  stoppedAt: number[];
  started: Promise<void>;
  controller?: Controller;
  metrics: OperatorMetrics;
}

describe('leader election against a real kube-apiserver', function () {
  this.timeout(120_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let proxy: ApiProxy;
  let namespace: string;
  const candidates: Candidate[] = [];

  before(async function () {
    this.timeout(600_000);
    ({ plane, config } = await startControlPlaneWithCrd());
  });
  after(async () => {
    await plane?.stop();
  });
  beforeEach(async () => {
    namespace = await freshNamespace(config);
    proxy = await startApiProxy(plane);
  });
  afterEach(async () => {
    for (const candidate of candidates.splice(0)) {
      await candidate.controller?.stop();
      await candidate.elector.stop();
    }
    await proxy.close();
  });

  const leases = () => config.makeApiClient(CoordinationV1Api);
  /** A candidate for the Lease `name`; with `reconcile`, it runs a controller while it leads. */
  const candidate = (
    identity: string,
    options: { name?: string; through?: ApiProxy; reconcile?: boolean } = {},
  ): Candidate => {
    const own =
      options.through === undefined
        ? config
        : kubeConfigFor(plane, { server: options.through.server });
    const elector = createLeaderElector({
      leases: own.makeApiClient(CoordinationV1Api),
      namespace,
      leaseName: options.name ?? 'lead',
      identity,
      leaseDurationSeconds: LEASE_SECONDS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
      retryPeriodMs: RETRY_MS,
      logger,
    });
    let onStarted!: () => void;
    const result: Candidate = {
      elector,
      startedAt: [],
      stoppedAt: [],
      started: new Promise((resolve) => (onStarted = resolve)),
      metrics: new OperatorMetrics(),
    };
    elector.run({
      onStartedLeading() {
        result.startedAt.push(performance.now());
        if (options.reconcile === true) {
          result.controller = startController({
            config: own,
            kube: makeKubeClient(own),
            redis: noRedis,
            logger,
            metrics: result.metrics,
            isLeader: () => elector.isLeader(),
          });
        }
        onStarted();
      },
      async onStoppedLeading() {
        result.stoppedAt.push(performance.now());
        await result.controller?.stop();
      },
    });
    candidates.push(result);
    return result;
  };
  const holder = async (name = 'lead') =>
    (await leases().readNamespacedLease({ name, namespace })).spec?.holderIdentity;
  const successes = async (metrics: OperatorMetrics) =>
    (await metrics.reconciles.get()).values.find((value) => value.labels.result === 'success')
      ?.value ?? 0;
  const createCache = (name: string) => createBlobCache(config, namespace, name);
  const deploymentExists = (name: string) =>
    objectExists(config, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: `${name}-http`,
      namespace,
    });
  const leaseWrites = (ok: boolean) =>
    proxy.calls.filter(
      (call) =>
        call.method === 'PUT' && call.path.includes('/leases/lead') && (call.status === 200) === ok,
    );

  it('lets one instance lead; another waits and takes over at once when the first hands over', async () => {
    const first = candidate('first');
    await first.started;
    const second = candidate('second');
    // While the first renews, the second never leads: it tries for two lease durations.
    await sleep(2 * LEASE_SECONDS * 1000);
    expect(second.startedAt).to.deep.equal([]);
    expect(await holder()).to.equal('first');
    const handedOver = performance.now();
    await first.elector.stop();
    await second.started;
    // Released, not expired: taken well within a lease duration.
    expect(second.startedAt[0]! - handedOver).to.be.below(LEASE_SECONDS * 1000);
    expect(await holder()).to.equal('second');
  });

  it('keeps leading through transient errors (5xx, 409) on renewal', async () => {
    const leader = candidate('leader', { through: proxy });
    await leader.started;
    const standby = candidate('standby');
    await eventually('a renewal through the proxy', () =>
      Promise.resolve(leaseWrites(true).length > 0),
    );
    proxy.fail({ method: 'PUT', path: /\/leases\/lead$/, status: 500, times: 3 });
    proxy.fail({ method: 'PUT', path: /\/leases\/lead$/, status: 409, times: 2 });
    await eventually('the failed renewals and a good one after them', () => {
      const failed = leaseWrites(false);
      const last = failed.at(-1);
      return Promise.resolve(
        failed.length === 5 && leaseWrites(true).some((call) => call.at > last!.at),
      );
    });
    expect(leaseWrites(false).map((call) => call.status)).to.deep.equal([500, 500, 500, 409, 409]);
    expect(leader.stoppedAt, 'leadership was never given up').to.deep.equal([]);
    expect(leader.elector.isLeader()).to.equal(true);
    expect(standby.startedAt).to.deep.equal([]);
    expect(await holder()).to.equal('leader');
  });

  it('stops reconciling before its Lease can expire elsewhere when it cannot renew', async () => {
    const leader = candidate('leader', { through: proxy, reconcile: true });
    await leader.started;
    await leader.controller!.started;
    const standby = candidate('standby', { reconcile: true });
    await createCache('first');
    await eventually('the leader to reconcile', () => deploymentExists('first'));
    await eventually('the leader to finish', async () => (await successes(leader.metrics)) > 0);

    proxy.fail({ path: /\/leases\/lead$/, status: 503 }); // the leader's Lease calls all fail
    await standby.started;
    const lastRenewal = leaseWrites(true).at(-1)!.at;
    const stopped = leader.stoppedAt[0]!;
    const takenOver = standby.startedAt[0]!;
    expect(stopped - lastRenewal, 'gave up within the renew deadline').to.be.below(
      LEASE_SECONDS * 1000,
    );
    expect(stopped, 'gave up before the other took over').to.be.below(takenOver);
    expect(takenOver - lastRenewal, 'taken only after a lease duration').to.be.at.least(
      LEASE_SECONDS * 1000,
    );
    expect(leader.elector.isLeader()).to.equal(false);

    // The old leader reconciles nothing more; the new one does.
    const leaderReconciles = await successes(leader.metrics);
    await standby.controller!.started;
    await createCache('second');
    await eventually('the new leader to reconcile', () => deploymentExists('second'));
    expect(await successes(leader.metrics)).to.equal(leaderReconciles);
    const writesAfterStop = proxy.calls.filter(
      (call) => call.at > stopped && call.method !== 'GET' && !call.path.includes('/leases/'),
    );
    expect(writesAfterStop).to.deep.equal([]);
  });

  const createLease = (name: string, renewTime: number) =>
    leases().createNamespacedLease({
      namespace,
      body: {
        metadata: { name, namespace },
        spec: {
          holderIdentity: 'ghost',
          leaseDurationSeconds: LEASE_SECONDS,
          renewTime: new V1MicroTime(renewTime),
          acquireTime: new V1MicroTime(renewTime),
        },
      },
    });

  it('takes over a silent holder after the lease duration as seen here, though its renewTime claims minutes ahead', async () => {
    await createLease('ahead', Date.now() + 10 * 60_000);
    const began = performance.now();
    const successor = candidate('successor', { name: 'ahead' });
    await successor.started;
    const waited = successor.startedAt[0]! - began;
    expect(waited).to.be.at.least(LEASE_SECONDS * 1000);
    expect(waited).to.be.below(60_000);
    const lease = await leases().readNamespacedLease({ name: 'ahead', namespace });
    expect(lease.spec?.holderIdentity).to.equal('successor');
    expect(lease.spec?.leaseTransitions).to.equal(1);
  });

  it('never takes over a holder that keeps renewing, though its renewTime lags minutes behind', async () => {
    const skew = 10 * 60_000;
    await createLease('behind', Date.now() - skew);
    const successor = candidate('successor', { name: 'behind' });
    let lastRenewal = performance.now();
    // The ghost renews every 300 ms for three lease durations, with its slow clock.
    for (let renewal = 0; renewal < (3 * LEASE_SECONDS * 1000) / 300; renewal++) {
      const lease = await leases().readNamespacedLease({ name: 'behind', namespace });
      lease.spec!.renewTime = new V1MicroTime(Date.now() - skew);
      lease.spec!.acquireTime = new V1MicroTime(Date.now() - skew);
      await leases().replaceNamespacedLease({ name: 'behind', namespace, body: lease });
      lastRenewal = performance.now();
      expect(successor.startedAt, 'taken over while the holder renewed').to.deep.equal([]);
      await sleep(300);
    }
    await successor.started;
    expect(successor.startedAt[0]! - lastRenewal).to.be.at.least(LEASE_SECONDS * 1000);
    expect(await holder('behind')).to.equal('successor');
  });
});
