/** What a load generator measured, summarised as every generator reports it. */
export interface LoadResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  megabytesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export function summarise(run: {
  size: number;
  seconds: number;
  latenciesMs: number[];
  errors: number;
}): LoadResult {
  const sorted = [...run.latenciesMs].sort((a, b) => a - b);
  const percentile = (p: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
  const requests = sorted.length;
  return {
    requests,
    seconds: run.seconds,
    requestsPerSecond: requests / run.seconds,
    megabytesPerSecond: (requests * run.size) / run.seconds / 1e6,
    p50Ms: percentile(50),
    p99Ms: percentile(99),
    errors: run.errors,
  };
}
