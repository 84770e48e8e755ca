/**
 * Typed errors of the data plane. Each carries a stable `code` (the last segment of the
 * problem+json `type`) and the HTTP status it maps to; `http/problem.ts` is the only place
 * that turns them into responses.
 */
export class BlobcacheError extends Error {
  readonly code: string;
  readonly status: number;
  readonly title: string;

  constructor(
    message: string,
    options: { code: string; status: number; title: string; cause?: unknown },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.status = options.status;
    this.title = options.title;
  }
}

type Detail = { cause?: unknown };

function define(code: string, status: number, title: string) {
  return class extends BlobcacheError {
    constructor(message: string, detail: Detail = {}) {
      super(message, { code, status, title, cause: detail.cause });
    }
  };
}

export class InvalidKeyError extends define('invalid-key', 400, 'Invalid blob key') {}
export class DigestMismatchError extends define('digest-mismatch', 400, 'Digest mismatch') {}
export class ContentMd5MismatchError extends define(
  'content-md5-mismatch',
  400,
  'Content-MD5 does not match the key',
) {}
export class SizeMismatchError extends define('size-mismatch', 400, 'Body size mismatch') {}
export class InvalidHeaderError extends define('invalid-header', 400, 'Invalid request header') {}
export class InvalidBodyError extends define('invalid-body', 400, 'Invalid request body') {}
export class UnauthorizedError extends define('unauthorized', 401, 'Authentication required') {}
export class ForbiddenError extends define('forbidden', 403, 'Insufficient scope') {}
/** The request could not be parsed as HTTP (reported by Node's parser). */
export class BadRequestError extends define('bad-request', 400, 'Bad request') {}
export class BlobNotFoundError extends define('blob-not-found', 404, 'Blob not found') {}
export class RouteNotFoundError extends define('route-not-found', 404, 'Route not found') {}
export class MethodNotAllowedError extends define(
  'method-not-allowed',
  405,
  'Method not allowed',
) {}
export class DigestConflictError extends define(
  'digest-conflict',
  409,
  'Stored blob has a different SHA-256',
) {}
export class PreconditionFailedError extends define(
  'precondition-failed',
  412,
  'Precondition failed',
) {}
export class BlobTooLargeError extends define('blob-too-large', 413, 'Blob too large') {}
/** A request body other than a blob (the key list of /missing) over its limit. */
export class BodyTooLargeError extends define('body-too-large', 413, 'Request body too large') {}
export class UnsupportedMediaTypeError extends define(
  'unsupported-media-type',
  415,
  'Unsupported media type',
) {}
export class RangeNotSatisfiableError extends define(
  'range-not-satisfiable',
  416,
  'Range not satisfiable',
) {}
export class ExpectationFailedError extends define(
  'expectation-failed',
  417,
  'Expectation failed',
) {}
export class HeadersTooLargeError extends define(
  'headers-too-large',
  431,
  'Request header fields too large',
) {}
export class RequestTimeoutError extends define('request-timeout', 408, 'Request timeout') {}
export class ServiceUnavailableError extends define(
  'service-unavailable',
  503,
  'Service unavailable',
) {}
/** The durable tier's disk is full (ENOSPC, EDQUOT): nothing was stored. */
export class InsufficientStorageError extends define(
  'insufficient-storage',
  507,
  'Insufficient storage',
) {}
/** The client went away mid-request; nothing can be answered, nothing was stored. */
export class ClientAbortedError extends define('client-aborted', 499, 'Client closed request') {}

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

/** True for a write that failed because the disk (or the user's quota) is full. */
export function isNoSpace(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (NO_SPACE_CODES.has((cause as NodeJS.ErrnoException).code ?? '')) return true;
  }
  return false;
}
