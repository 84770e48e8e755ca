import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { isS3Unavailable } from '../backends/s3-errors.ts';
import {
  BlobcacheError,
  InvalidBodyError,
  RouteNotFoundError,
  ServiceUnavailableError,
} from '../blob/errors.ts';
import { isRetryableRedisError } from '../redis/errors.ts';
import { requestContext } from './request-context.ts';

export const PROBLEM_TYPE_BASE = 'https://blobcache.io/problems/';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  requestId?: string;
}

/** Maps anything thrown into a `BlobcacheError`; unknown errors become a 500 that hides internals. */
export function toBlobcacheError(error: unknown): BlobcacheError {
  if (error instanceof BlobcacheError) return error;
  if (isRetryableRedisError(error) || isS3Unavailable(error)) {
    // A tier failing over or briefly unreachable: tell the client to come back.
    return new ServiceUnavailableError('A storage tier is briefly unavailable; retry shortly', {
      cause: error,
    });
  }
  const status = (error as { status?: unknown } | null)?.status;
  const type = (error as { type?: unknown } | null)?.type;
  // body-parser (express.json) marks its own failures with a 4xx status and a type.
  if (typeof status === 'number' && status >= 400 && status < 500 && typeof type === 'string') {
    const message = error instanceof Error ? error.message : String(error);
    return new InvalidBodyError(`The request body could not be read: ${message}`, { cause: error });
  }
  return new BlobcacheError('The server failed to handle the request; see its logs', {
    code: 'internal',
    status: 500,
    title: 'Internal server error',
    cause: error,
  });
}

export function problemBody(
  error: BlobcacheError,
  instance?: string,
  requestId?: string,
): ProblemDetails {
  return {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(instance === undefined ? {} : { instance }),
    ...(requestId === undefined ? {} : { requestId }),
  };
}

function sendProblem(res: Response, error: BlobcacheError): void {
  const { requestId } = requestContext(res);
  res.status(error.status);
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="blobcache"');
  if (error.status === 503) res.setHeader('Retry-After', '1');
  // An unread upload body would otherwise be drained to the end first; closing the
  // connection answers at once and keeps a client from streaming gigabytes for nothing.
  if (!res.req.complete) res.setHeader('Connection', 'close');
  res
    .type('application/problem+json')
    .send(JSON.stringify(problemBody(error, res.req.originalUrl, requestId)));
}

/** The one place errors become responses (RFC 9457 problem+json). */
export const problemHandler: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  const problem = toBlobcacheError(error);
  const { logger } = requestContext(res);
  const fields = { code: problem.code, error: problem.message, cause: describeCause(problem) };
  if (problem.status >= 500) logger.error('Failed a request', fields);
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
