import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { isS3Unavailable } from '../backends/s3-errors.ts';
import {
  BlobNotFoundError,
  BlobcacheError,
  BodyTooLargeError,
  InsufficientStorageError,
  InvalidBodyError,
  InvalidKeyError,
  isNoSpace,
  RouteNotFoundError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
} from '../blob/errors.ts';
import { isRetryableRedisError } from '../redis/errors.ts';
import { answerEarly } from './early-answer.ts';
import { problemBody } from './problem-body.ts';
import { requestContext } from './request-context.ts';

export { PROBLEM_TYPE_BASE, problemBody, type ProblemDetails } from './problem-body.ts';

/**
 * Errors that express and body-parser raise for the request itself carry a 4xx `status`
 * (and body-parser a `type`): a path that does not decode, a body over the limit, a body
 * that does not inflate or parse. They are the client's fault, never a 500.
 */
function requestError(error: unknown): BlobcacheError | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  const message = error instanceof Error ? error.message : String(error);
  if (status === 413) {
    return new BodyTooLargeError(`The request body is over its limit: ${message}`, {
      cause: error,
    });
  }
  if (status === 415) {
    return new UnsupportedMediaTypeError(`The request body cannot be read: ${message}`, {
      cause: error,
    });
  }
  if (error instanceof URIError) {
    // express's router: a path parameter that is not valid percent-encoding.
    return new InvalidKeyError(`The request path could not be decoded: ${message}`, {
      cause: error,
    });
  }
  return new InvalidBodyError(`The request body could not be read: ${message}`, {
    cause: error,
  });
}

/** Maps anything thrown into a `BlobcacheError`; unknown errors become a 500 that hides internals. */
export function toBlobcacheError(error: unknown): BlobcacheError {
  if (error instanceof BlobcacheError) return error;
  if (isNoSpace(error)) {
    return new InsufficientStorageError('The data directory is full; nothing was stored', {
      cause: error,
    });
  }
  if (isRetryableRedisError(error) || isS3Unavailable(error)) {
    // A tier failing over or briefly unreachable: tell the client to come back.
    return new ServiceUnavailableError('A storage tier is briefly unavailable; retry shortly', {
      cause: error,
    });
  }
  const fromRequest = requestError(error);
  if (fromRequest !== undefined) return fromRequest;
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    // A JSON body nested deeper than the parser's stack.
    return new InvalidBodyError('The request body is nested too deeply', { cause: error });
  }
  return new BlobcacheError('The server failed to handle the request; see its logs', {
    code: 'internal',
    status: 500,
    title: 'Internal server error',
    cause: error,
  });
}

function sendProblem(res: Response, error: BlobcacheError): void {
  const { requestId } = requestContext(res);
  res.status(error.status);
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="blobcache"');
  if (error.status === 503 || error.status === 507) res.setHeader('Retry-After', '1');
  // An unread upload body would otherwise be drained to the end first; closing the
  // connection (after letting the client finish writing, so it sees the answer) keeps it
  // from streaming gigabytes for nothing.
  if (!res.req.complete) answerEarly(res);
  res
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(error, res.req.originalUrl, requestId)));
}

/** The one place errors become responses (RFC 9457 problem+json). */
export const problemHandler: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  const { logger } = requestContext(res);
  if (res.writableEnded) {
    // Already answered (a 503 for a request that took too long to answer): the handler's
    // late failure must not cut the connection under that answer.
    logger.info('A request answered before its handler finished failed after', {
      error: error instanceof Error ? error.message : String(error),
    });
    return;
  }
  const problem = toBlobcacheError(error);
  const fields = { code: problem.code, error: problem.message, cause: describeCause(problem) };
  if (problem.status >= 500) logger.error('Failed a request', fields);
  // Asking for a blob that is not stored is how clients find out what to upload: an
  // ordinary answer, not a rejection worth a warning.
  else if (problem instanceof BlobNotFoundError) logger.debug('Answered not found', fields);
  else logger.warn('Rejected a request', fields);
  if (res.headersSent || res.destroyed) {
    // Mid-body failures cannot be reported in-band; cutting the connection tells the
    // client the transfer is incomplete.
    res.destroy();
    return;
  }
  sendProblem(res, problem);
};

export const routeNotFound: RequestHandler = (req, _res, next) => {
  next(new RouteNotFoundError(`No route for ${req.method} ${req.path}`));
};

function describeCause(error: Error): string | undefined {
  const cause = error.cause;
  if (cause === undefined) return undefined;
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : JSON.stringify(cause);
}
