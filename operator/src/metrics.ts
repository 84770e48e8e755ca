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

  readonly backfillProgress = new Gauge({
    name: 'blobcache_operator_backfill_progress_ratio',
    help: 'Share of the current backfill done (bytes of the newest blobs selected that are in Redis; 1 once the Job succeeded), per BlobCache while a backfill warms it.',
    labelNames: ['namespace', 'blobcache'] as const,
    registers: [this.registry],
  });

  /** Sets (or, with null, removes) a BlobCache's backfill progress. */
  setBackfillProgress(namespace: string, blobcache: string, ratio: number | null): void {
    if (ratio === null) this.backfillProgress.remove({ namespace, blobcache });
    else this.backfillProgress.set({ namespace, blobcache }, ratio);
  }

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }
}
