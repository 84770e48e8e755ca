/**
 * Composition root of the operator: reads the environment, builds the Kubernetes clients,
 * waits for leadership (a Lease), then runs the controller; serves /healthz, /readyz and
 * /metrics; on SIGTERM stops watching, finishes reconciles under way and gives the Lease up.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import winston from 'winston';
import { startController, type Controller } from './controller/controller.ts';
import { electLeader } from './controller/leader-election.ts';
import { makeKubeClient } from './kube/client.ts';
import { OperatorMetrics } from './metrics.ts';

const env = process.env;
const port = Number(env.OPERATOR_METRICS_PORT ?? 8081);
const namespace = env.OPERATOR_NAMESPACE ?? 'blobcache-system';
const identity = env.POD_NAME ?? `${hostname()}-${process.pid}`;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(
    `OPERATOR_METRICS_PORT must be a TCP port, got '${env.OPERATOR_METRICS_PORT}'\n`,
  );
  process.exit(1);
}

const logger = winston.createLogger({
  level: env.OPERATOR_LOG_LEVEL ?? 'info',
  format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
  defaultMeta: { service: 'blobcache-operator' },
  transports: [new winston.transports.Console()],
});
const config = new KubeConfig();
config.loadFromDefault();
const metrics = new OperatorMetrics({ processMetrics: true });
let controller: Controller | undefined;
let stopping = false;

const server = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200).end('ok');
  } else if (req.url === '/readyz') {
    // Ready means able to take over: a standby instance is ready too.
    res.writeHead(stopping ? 503 : 200).end(stopping ? 'stopping' : 'ready');
  } else if (req.url === '/metrics') {
    void metrics.registry
      .metrics()
      .then((text) =>
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
      );
  } else {
    res.writeHead(404).end();
  }
});
server.listen(port, () => logger.info('Serving operator health and metrics', { port }));

const election = electLeader({ config, namespace, identity, logger });
void election.acquired.then(() => {
  if (stopping) return;
  controller = startController({ config, kube: makeKubeClient(config), logger, metrics });
  logger.info('Started the controller', { identity });
});
void election.lost.then(() => {
  // Another instance may already be reconciling: stop at once rather than compete.
  logger.error('Lost leadership; exiting so a fresh start can compete again');
  process.exit(1);
});

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('Stopping the operator', { signal });
  await controller?.stop();
  await election.release();
  server.close();
  logger.on('finish', () => process.exit(0));
  logger.end();
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
