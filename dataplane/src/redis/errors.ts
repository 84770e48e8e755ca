import { ServiceUnavailableError } from '../blob/errors.ts';

/** A chunk of a published blob is gone (evicted, or lost in a failover): not a hit. */
export class ChunkMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkMissingError';
  }
}

const RETRYABLE_PATTERNS = [
  /^CLUSTERDOWN/,
  /^MOVED /,
  /^ASK /,
  /^TRYAGAIN/,
  /^LOADING/,
  /^MASTERDOWN/,
  /^READONLY/,
  /^OOM /,
  /Connection is closed/,
  /Too many Cluster redirections/,
  /Failed to refresh slots cache/,
  /None of startup nodes is available/,
  /max retries per request/i,
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE/,
  /Cluster isn't ready/,
  /Command aborted due to connection close/,
  // WAIT on a node that turned replica between the pipeline's commands (a failover).
  /^ERR WAIT cannot be used with replica/,
];

/**
 * True for Redis failures that pass on their own (failover, cluster reconfiguring, full
 * memory): the request is answered 503 with Retry-After rather than 500.
 */
export function isRetryableRedisError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return RETRYABLE_PATTERNS.some((pattern) => pattern.test(error.message));
}

/** True when Redis refused a write because it is full of blobs it may not evict. */
export function isRedisOutOfMemory(error: unknown): boolean {
  return error instanceof Error && /^OOM /.test(error.message);
}

/** Rethrows Redis trouble as a 503 that tells the client to retry; anything else as is. */
export function asServiceError(error: unknown, doing: string): unknown {
  if (isRedisOutOfMemory(error)) {
    return new ServiceUnavailableError(
      `The cache is full of blobs not yet persisted; retry ${doing} shortly`,
      { cause: error },
    );
  }
  if (isRetryableRedisError(error)) {
    return new ServiceUnavailableError(
      `The cache is briefly unavailable while ${doing}; retry shortly`,
      { cause: error },
    );
  }
  return error;
}
