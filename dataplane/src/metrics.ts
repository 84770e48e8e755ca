import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MemoryHitTally } from './memory-hit-tally.ts';

export interface MetricsOptions {
  /** Adds Node's process metrics (CPU, memory, event loop lag). @default false */
  processMetrics?: boolean;
}

/** Gauges read on every scrape from a source that is asked then (e.g. Redis). */
export interface ScrapedGauge {
  name: string;
  help: string;
  read: () => Promise<number>;
}

const HTTP_DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
] as const;

/** The labels of an answer from the HTTP fast path (always a whole blob, 200). */
export const MEMORY_HIT_LABELS = { method: 'GET', route: '/v1/blobs/{md5}', status: '200' };

/**
 * Every Prometheus metric of the data plane, on a registry of its own so that several apps
 * can live in one process (tests) without clashing on the global registry.
 */
export class Metrics {
  readonly registry = new Registry();
  /** In-memory hits answered by the HTTP fast path, folded in below whenever read. */
  readonly memoryHits = new MemoryHitTally(HTTP_DURATION_BUCKETS);
  readonly httpRequests = new Counter({
    name: 'blobcache_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
    collect: () => this.foldMemoryHitAnswers(),
  });
  readonly httpDuration = new Histogram({
    name: 'blobcache_http_request_duration_seconds',
    help: 'Time from request start to the last byte of the response, by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [...HTTP_DURATION_BUCKETS],
    registers: [this.registry],
    collect: () => this.foldMemoryHitAnswers(),
  });
  readonly bytesReceived = new Counter({
    name: 'blobcache_bytes_received_total',
    help: 'Blob bytes received in upload bodies.',
    registers: [this.registry],
  });
  readonly bytesSent: Counter = new Counter({
    name: 'blobcache_bytes_sent_total',
    help: 'Blob bytes sent in GET response bodies.',
    registers: [this.registry],
    collect: (): void => this.memoryHits.foldBytes(this.bytesSent),
  });
  readonly cacheRequests: Counter<'result'> = new Counter({
    name: 'blobcache_cache_requests_total',
    help: 'Blob reads by outcome: hit (fast tier), miss (read through), absent (in no tier).',
    labelNames: ['result'] as const,
    registers: [this.registry],
    collect: (): void => this.memoryHits.foldHits(this.cacheRequests),
  });
  readonly fills = new Counter({
    name: 'blobcache_fills_total',
    help: 'Fast-tier fills from the durable tier, by outcome.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly coalescedWaits = new Counter({
    name: 'blobcache_fill_coalesced_waits_total',
    help: 'Reads of a missing blob that waited for a fill already under way instead of starting one.',
    registers: [this.registry],
  });
  readonly uploads = new Counter({
    name: 'blobcache_journal_uploads_total',
    help: 'Journal entries completed, by outcome (uploaded, present, deleted, abandoned, lost, conflict).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly uploadedBytes = new Counter({
    name: 'blobcache_journal_uploaded_bytes_total',
    help: 'Bytes written behind to the durable tier.',
    registers: [this.registry],
  });
  readonly uploadSeconds = new Histogram({
    name: 'blobcache_journal_upload_duration_seconds',
    help: 'Time to copy one blob from Redis to the durable tier.',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly lostBlobs = new Counter({
    name: 'blobcache_journal_lost_total',
    help: 'Acknowledged blobs that vanished from Redis before the durable tier had them (should stay 0; alert on any).',
    registers: [this.registry],
  });
  readonly uploadFailures = new Counter({
    name: 'blobcache_journal_upload_failures_total',
    help: 'Failed attempts to copy a blob to the durable tier (each is retried).',
    registers: [this.registry],
  });

  readonly clientErrors = new Counter({
    name: 'blobcache_client_errors_total',
    help: 'Requests that failed on the client side (reset mid-upload, unparseable HTTP), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly stalledAnswers = new Counter({
    name: 'blobcache_stalled_answers_total',
    help: 'Requests answered 503 because no answer was ready within the idle timeout (a tier stalled).',
    registers: [this.registry],
  });
  readonly quarantined = new Counter({
    name: 'blobcache_quarantined_total',
    help: 'Stored copies found damaged (not hashing to their key) and removed, by tier.',
    labelNames: ['tier'] as const,
    registers: [this.registry],
  });
  readonly localTierReads = new Counter({
    name: 'blobcache_local_tier_reads_total',
    help: 'Reads of large blobs by how the local tier served them: hit (its copy), followed (a copy being written), filled (started a copy), skipped (no copy could be kept).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly localTierServedBytes = new Counter({
    name: 'blobcache_local_tier_served_bytes_total',
    help: "Bytes served from the local tier's copies.",
    registers: [this.registry],
  });
  readonly localTierEvictions = new Counter({
    name: 'blobcache_local_tier_evictions_total',
    help: 'Copies the local tier evicted to stay within BLOBCACHE_LOCAL_TIER_BYTES.',
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'blobcache_connections_refused_total',
    help: 'Connections answered 503 because the server already had its maximum open.',
    registers: [this.registry],
  });
  readonly openConnections = new Gauge({
    name: 'blobcache_open_connections',
    help: 'HTTP connections open now.',
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }

  /** Both metrics an answer goes to take the tallied answers together, whichever is read first. */
  private foldMemoryHitAnswers(): void {
    this.memoryHits.foldAnswers(MEMORY_HIT_LABELS, this.httpRequests, this.httpDuration);
  }

  /** Registers gauges whose value is read at scrape time; a failing read reports -1. */
  addScrapedGauges(gauges: readonly ScrapedGauge[]): void {
    for (const gauge of gauges) {
      new Gauge({
        name: gauge.name,
        help: gauge.help,
        registers: [this.registry],
        async collect() {
          this.set(await gauge.read().catch(() => -1));
        },
      });
    }
  }
}
