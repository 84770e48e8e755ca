import express, { type Router } from 'express';
import type { BlobService } from '../blob/service.ts';
import { MethodNotAllowedError, ServiceUnavailableError } from '../blob/errors.ts';
import type { Metrics } from '../metrics.ts';
import { labelRoute } from './request-context.ts';

export interface OpsRoutesOptions {
  blobs: BlobService;
  metrics: Metrics;
  /** True once shutdown began: readiness fails so load balancers stop sending traffic. */
  isDraining: () => boolean;
}

/** Liveness, readiness and Prometheus metrics; unauthenticated, like kubelet probes expect. */
export function opsRoutes(options: OpsRoutesOptions): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    labelRoute(res, '/healthz');
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    labelRoute(res, '/readyz');
    if (options.isDraining()) throw new ServiceUnavailableError('The server is shutting down');
    try {
      await options.blobs.check();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ServiceUnavailableError(`A storage tier is not ready: ${reason}`, {
        cause: error,
      });
    }
    res.json({ status: 'ready' });
  });
  router.get('/metrics', async (_req, res) => {
    labelRoute(res, '/metrics');
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  // HEAD is served by the GET routes; any other method is the client's mistake, not a 404.
  router.all(['/healthz', '/readyz', '/metrics'], (req, res) => {
    labelRoute(res, req.path);
    res.setHeader('Allow', 'GET, HEAD');
    throw new MethodNotAllowedError(`${req.method} is not allowed here; use GET or HEAD`);
  });
  return router;
}
