import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The operator's Prometheus metrics, on a registry of its own. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'blobcache_operator_reconciles_total',
    help: 'Reconciles of BlobCache resources, by result (success, error, terminal: a spec that cannot work, fenced: refused after leadership was lost).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: 'blobcache_operator_reconcile_duration_seconds',
    help: 'Time one reconcile took.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly leading = new Gauge({
    name: 'blobcache_operator_leading',
    help: '1 while this instance holds the leader Lease and reconciles.',
    registers: [this.registry],
  });

  readonly slotsUncovered = new Gauge({
    name: 'blobcache_operator_slots_uncovered',
    help: 'Redis Cluster slots without a master serving them, per BlobCache (0 before its cluster was first created).',
    labelNames: ['namespace', 'blobcache'] as const,
    registers: [this.registry],
  });

  readonly replicasInMasterZone = new Gauge({
    name: 'blobcache_operator_replicas_in_master_zone',
    help: "Redis replicas running in their master's zone, per BlobCache.",
    labelNames: ['namespace', 'blobcache'] as const,
    registers: [this.registry],
  });

  /** Records what the membership phase found of a BlobCache's Redis Cluster. */
  redisCluster(
    key: { namespace: string; name: string },
    found: { slotsUncovered: number; replicasInMasterZone: number },
  ): void {
    const labels = { namespace: key.namespace, blobcache: key.name };
    this.slotsUncovered.set(labels, found.slotsUncovered);
    this.replicasInMasterZone.set(labels, found.replicasInMasterZone);
  }

  /** Drops the per-BlobCache series of a BlobCache that is gone. */
  forget(key: { namespace: string; name: string }): void {
    const labels = { namespace: key.namespace, blobcache: key.name };
    this.slotsUncovered.remove(labels);
    this.replicasInMasterZone.remove(labels);
  }

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }
}
