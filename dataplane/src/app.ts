import express, { type Express } from 'express';
import type { RequestListener } from 'node:http';
import { fastReads } from './http/fast-read.ts';
import type { Logger } from 'winston';
import type { BlobService } from './blob/service.ts';
import type { AuthTokens } from './http/auth.ts';
import { blobRoutes } from './http/blobs.ts';
import { opsRoutes } from './http/ops.ts';
import { problemHandler, routeNotFound } from './http/problem.ts';
import { requestContextMiddleware } from './http/request-context.ts';
import type { Metrics } from './metrics.ts';

export interface AppDependencies {
  blobs: BlobService;
  logger: Logger;
  metrics: Metrics;
  auth: AuthTokens;
  maxBlobBytes: number;
  /** @default 10000 */
  maxMissingKeys?: number;
  /** @default () => false */
  isDraining?: () => boolean;
}

/**
 * The request handler to serve: the express app behind the fast path for in-memory hits.
 * main.ts and the tests both serve this.
 */
export function createHandler(deps: AppDependencies): RequestListener {
  return fastReads({
    blobs: deps.blobs,
    metrics: deps.metrics,
    auth: deps.auth,
    next: createApp(deps),
  });
}

/** Builds the data plane's HTTP app without listening, so tests and main.ts share it. */
export function createApp(deps: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContextMiddleware(deps.logger, deps.metrics));
  app.use(
    opsRoutes({
      blobs: deps.blobs,
      metrics: deps.metrics,
      isDraining: deps.isDraining ?? (() => false),
    }),
  );
  app.use(
    blobRoutes({
      blobs: deps.blobs,
      metrics: deps.metrics,
      auth: deps.auth,
      maxBlobBytes: deps.maxBlobBytes,
      maxMissingKeys: deps.maxMissingKeys ?? 10_000,
    }),
  );
  app.use(routeNotFound);
  app.use(problemHandler);
  return app;
}
