import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';
import type { Logger } from 'winston';
import { guardConnections } from './http/connections.ts';
import type { Metrics } from './metrics.ts';

export interface ServerOptions {
  port: number;
  host: string;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  shutdownGraceMs: number;
  /** Connections served at once; more are answered 503 and closed. */
  maxConnections: number;
  logger: Logger;
  metrics: Metrics;
}

export interface RunningServer {
  server: Server;
  address: AddressInfo;
  /**
   * Stops accepting connections and resolves once in-flight requests are done, cutting
   * whatever is still running after the grace period.
   */
  close(): Promise<void>;
}

/**
 * Listens with the timeouts and guards that protect the process from slow, stuck and
 * hostile clients (see http/connections.ts).
 */
export async function startServer(
  handler: RequestListener,
  options: ServerOptions,
): Promise<RunningServer> {
  const server = createServer({
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    keepAliveTimeout: 5_000,
    // Checked by the guard, which answers with problem+json instead of an empty 400.
    requireHostHeader: false,
  });
  server.on(
    'request',
    guardConnections(server, handler, {
      logger: options.logger,
      metrics: options.metrics,
      maxConnections: options.maxConnections,
      idleTimeoutMs: options.idleTimeoutMs,
    }),
  );
  // Socket inactivity, in both directions: a client that stops reading or sending is cut.
  server.setTimeout(options.idleTimeoutMs);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        options.logger.warn('Cut connections still open after the shutdown grace period');
        server.closeAllConnections();
      }, options.shutdownGraceMs);
      // Keep-alive connections become idle as their last response ends; close them as
      // they do rather than waiting out the keep-alive timeout.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      server.close(() => {
        clearTimeout(force);
        clearInterval(sweep);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };
  return { server, address, close };
}
