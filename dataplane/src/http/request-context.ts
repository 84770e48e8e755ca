import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';

export interface RequestContext {
  requestId: string;
  logger: Logger;
}

const CONTEXT = Symbol('blobcache.requestContext');
const ROUTE = Symbol('blobcache.route');
export const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

type Locals = Record<symbol, unknown>;

export function requestContext(res: Response): RequestContext {
  const context = (res.locals as Locals)[CONTEXT] as RequestContext | undefined;
  if (context === undefined) throw new Error('requestContext() used before the context middleware');
  return context;
}

/** Names the route for metrics and access logs (a template, never the raw path). */
export function labelRoute(res: Response, route: string): void {
  (res.locals as Locals)[ROUTE] = route;
}

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane), a child logger
 * carrying it, an access-log line and the request metrics once the response is done.
 */
export function requestContextMiddleware(logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const offered = req.get('x-request-id');
    const requestId =
      offered !== undefined && SAFE_REQUEST_ID.test(offered) ? offered : randomUUID();
    let child: Logger | undefined;
    // The child logger is made on first use: most requests never log.
    const context: RequestContext = {
      requestId,
      get logger() {
        child ??= logger.child({ requestId });
        return child;
      },
    };
    (res.locals as Locals)[CONTEXT] = context;
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = ((res.locals as Locals)[ROUTE] as string | undefined) ?? 'unmatched';
      const status = res.writableFinished ? String(res.statusCode) : 'aborted';
      const labels = { method: req.method, route, status };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      // Successful reads are the bulk of the traffic: log them at debug, the rest at info.
      const quiet = (req.method === 'GET' || req.method === 'HEAD') && res.statusCode < 400;
      const level = quiet ? 'debug' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      context.logger.log(level, 'Answered a request', {
        method: req.method,
        path: req.originalUrl,
        status,
        ms: Math.round(seconds * 1e4) / 10,
      });
    });
    next();
  };
}
