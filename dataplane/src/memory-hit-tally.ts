import type { Counter, Histogram } from 'prom-client';

/**
 * The metrics of in-memory hits (the HTTP fast path), kept in plain numbers and folded into
 * the Prometheus metrics when they are read. prom-client's labelled `inc` and `observe`
 * check and hash their labels on every call, a measurable share of the CPU of the
 * cheapest and most frequent request (docs/decisions/0063); one fold per scrape replaces
 * thousands of them. What a scrape shows is exactly what per-request calls would show.
 */
export class MemoryHitTally {
  /** Answers sent, their blob bytes and their summed duration in seconds. */
  private requests = 0;
  private bytes = 0;
  private seconds = 0;
  /** Answers per duration bucket (not cumulative); the last slot is past the last bound. */
  private readonly buckets: Float64Array;
  /** In-memory reads counted as cache hits. */
  private cacheHits = 0;
  private readonly bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  /** One answer of `bytes` blob bytes that took `seconds`. */
  answered(bytes: number, seconds: number): void {
    this.requests += 1;
    this.bytes += bytes;
    this.seconds += seconds;
    const { bounds } = this;
    let slot = 0;
    while (slot < bounds.length && seconds > bounds[slot]!) slot += 1;
    this.buckets[slot] = this.buckets[slot]! + 1;
  }

  /** One read served from memory (a cache hit). */
  hit(): void {
    this.cacheHits += 1;
  }

  /** Moves the answers counted so far into `requests` and `duration`, under `labels`. */
  foldAnswers(
    labels: Record<string, string>,
    requests: Counter<string>,
    duration: Histogram<string>,
  ): void {
    if (this.requests === 0) return;
    requests.inc(labels, this.requests);
    addObservations(duration, labels, this.bounds, this.buckets, this.seconds);
    this.requests = 0;
    this.seconds = 0;
    this.buckets.fill(0);
  }

  /** Moves the blob bytes sent so far into `sent`. */
  foldBytes(sent: Counter): void {
    if (this.bytes === 0) return;
    sent.inc(this.bytes);
    this.bytes = 0;
  }

  /** Moves the hits counted so far into `cacheRequests` (`result="hit"`). */
  foldHits(cacheRequests: Counter<string>): void {
    if (this.cacheHits === 0) return;
    cacheRequests.inc({ result: 'hit' }, this.cacheHits);
    this.cacheHits = 0;
  }
}

/** How prom-client 15 keeps one label set of a histogram (it has no bulk observe). */
interface LabelSetValues {
  labels: Record<string, string | number>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

function sameLabels(a: Record<string, string | number>, b: Record<string, string>): boolean {
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((key) => a[key] === b[key]);
}

/**
 * Adds `counts[i]` observations to bucket `bounds[i]` (the last count lies past every
 * bound) and `sum` to their sum, as that many `observe` calls would. It reaches into
 * prom-client's per-label-set values; test/unit/memory-hit-tally.test.ts compares the
 * result with real `observe` calls, so a prom-client that keeps them otherwise fails there.
 */
function addObservations(
  histogram: Histogram<string>,
  labels: Record<string, string>,
  bounds: readonly number[],
  counts: Float64Array,
  sum: number,
): void {
  const find = (): LabelSetValues | undefined =>
    Object.values(
      (histogram as unknown as { hashMap: Record<string, LabelSetValues> }).hashMap,
    ).find((values) => sameLabels(values.labels, labels));
  let values = find();
  if (values === undefined) {
    histogram.zero(labels);
    values = find();
    if (values === undefined) throw new Error('prom-client keeps histogram values unexpectedly');
  }
  let total = 0;
  for (let slot = 0; slot < counts.length; slot += 1) {
    const count = counts[slot]!;
    total += count;
    const bound = bounds[slot];
    if (bound !== undefined && count > 0) {
      values.bucketValues[bound] = (values.bucketValues[bound] ?? 0) + count;
    }
  }
  values.count += total;
  values.sum += sum;
}
