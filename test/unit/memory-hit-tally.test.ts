import { expect } from 'chai';
import { MEMORY_HIT_LABELS, Metrics } from '../../dataplane/src/metrics.ts';

/**
 * What a scrape shows of the metrics in-memory hits go to; sums rounded to the nanosecond
 * (adding the same durations in another order may differ in the last bits).
 */
async function scrape(metrics: Metrics): Promise<string> {
  const names = [
    'blobcache_http_requests_total',
    'blobcache_http_request_duration_seconds',
    'blobcache_bytes_sent_total',
    'blobcache_cache_requests_total',
  ];
  const parts = await Promise.all(
    names.map((name) => metrics.registry.getSingleMetricAsString(name)),
  );
  return roundSums(parts.join('\n'));
}

function roundSums(text: string): string {
  return text.replace(/^(\S+_sum\S*) (\S+)$/gm, (_line, name: string, value: string) => {
    return `${name} ${Number(value).toFixed(9)}`;
  });
}

describe('MemoryHitTally', () => {
  // Below the first bucket, on bounds, between them, and past the last one.
  const durations = [0.0001, 0.0005, 0.0007, 0.003, 0.2, 60, 100];
  const other = { method: 'GET', route: '/v1/blobs/{md5}', status: '404' };

  /** The same traffic, counted by per-request prom-client calls and by the tally. */
  function bothWays(): { observed: Metrics; tallied: Metrics } {
    const observed = new Metrics();
    const tallied = new Metrics();
    for (const metrics of [observed, tallied]) {
      // Traffic of the express path, which goes to prom-client directly.
      metrics.httpRequests.inc(other);
      metrics.httpDuration.observe(other, 0.02);
      metrics.cacheRequests.inc({ result: 'miss' });
    }
    return { observed, tallied };
  }

  function answer(observed: Metrics, tallied: Metrics, seconds: number, bytes: number): void {
    observed.httpRequests.inc(MEMORY_HIT_LABELS);
    observed.httpDuration.observe(MEMORY_HIT_LABELS, seconds);
    observed.bytesSent.inc(bytes);
    observed.cacheRequests.inc({ result: 'hit' });
    tallied.memoryHits.answered(bytes, seconds);
    tallied.memoryHits.hit();
  }

  it('shows on a scrape exactly what per-request inc and observe calls show', async () => {
    const { observed, tallied } = bothWays();
    for (const seconds of durations) answer(observed, tallied, seconds, 4096);
    const expected = await scrape(observed);
    expect(expected).to.include('status="200"');
    expect(await scrape(tallied)).to.equal(expected);
    // Folded once: a second scrape adds nothing, later answers add to what was folded.
    expect(await scrape(tallied)).to.equal(expected);
    for (const seconds of durations.slice(2)) answer(observed, tallied, seconds, 100);
    expect(await scrape(tallied)).to.equal(await scrape(observed));
  });

  it('folds into a histogram reset since (no label set to add to yet)', async () => {
    const { observed, tallied } = bothWays();
    answer(observed, tallied, 0.0001, 10);
    await scrape(tallied);
    tallied.httpDuration.reset();
    observed.httpDuration.reset();
    answer(observed, tallied, 0.004, 10);
    expect(await scrape(tallied)).to.equal(await scrape(observed));
  });
});
