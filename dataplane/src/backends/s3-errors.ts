/** Classifies AWS SDK errors; kept apart from the S3 store so the HTTP layer needs no SDK. */

/**
 * True when an S3 error means "no such object" (a miss), as opposed to a failure.
 * HeadObject reports a bare 404 (`NotFound`), GetObject a `NoSuchKey`.
 */
export function isS3Miss(error: unknown): boolean {
  const candidate = error as {
    name?: string;
    Code?: string;
    $metadata?: { httpStatusCode?: number };
  } | null;
  if (candidate === null || typeof candidate !== 'object') return false;
  if (
    candidate.name === 'NoSuchKey' ||
    candidate.name === 'NotFound' ||
    candidate.Code === 'NoSuchKey'
  )
    return true;
  return candidate.$metadata?.httpStatusCode === 404 && candidate.name !== 'NoSuchBucket';
}

/**
 * True when S3 could not be reached or answered with a server error: the request may
 * succeed later, so clients get a 503 rather than a 500.
 */
export function isS3Unavailable(error: unknown): boolean {
  const candidate = error as {
    name?: string;
    code?: string;
    $metadata?: { httpStatusCode?: number };
  } | null;
  if (candidate === null || typeof candidate !== 'object') return false;
  const status = candidate.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (
    ['TimeoutError', 'RequestTimeout', 'SlowDown', 'ServiceUnavailable'].includes(
      candidate.name ?? '',
    )
  )
    return true;
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'].includes(
    candidate.code ?? '',
  );
}

/** True when a conditional write found its condition false (the object exists: 412). */
export function isPreconditionFailed(error: unknown): boolean {
  const candidate = error as { name?: string; $metadata?: { httpStatusCode?: number } } | null;
  if (candidate === null || typeof candidate !== 'object') return false;
  return candidate.name === 'PreconditionFailed' || candidate.$metadata?.httpStatusCode === 412;
}
