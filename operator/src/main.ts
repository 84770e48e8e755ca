/**
 * Composition root of the operator: the only module that reads `process.env`, builds the
 * Kubernetes and Redis clients and exits the process. Reads the config, serves /healthz,
 * /readyz and /metrics, and runs the controller while this instance leads (a Lease); when
 * leadership is lost it stops reconciling and competes again. On SIGTERM it stops
 * reconciling, hands the Lease over and exits.
 */
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { ConfigError, loadConfig, type OperatorConfig } from './config.ts';
import { startController, type Controller } from './controller/controller.ts';
import { createLeaderElector } from './controller/leader-election.ts';
import { makeKubeClient } from './kube/client.ts';
import { createLogger } from './logging.ts';
import { OperatorMetrics } from './metrics.ts';
import { makeRedisAdmin } from './redis/ioredis-admin.ts';

let config: OperatorConfig;
try {
  config = loadConfig({ env: process.env, defaultIdentity: `${hostname()}-${process.pid}` });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`Invalid configuration: ${error.message}\n`);
  process.exit(1);
}

const logger = createLogger({ level: config.logLevel });
const kubeConfig = new KubeConfig();
kubeConfig.loadFromDefault();
const kube = makeKubeClient(kubeConfig);
const redis = makeRedisAdmin({ timeoutMs: config.redisTimeoutMs });
const metrics = new OperatorMetrics({ processMetrics: true });
const elector = createLeaderElector({
  leases: kubeConfig.makeApiClient(CoordinationV1Api),
  logger,
  ...config,
});
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
server.listen(config.metricsPort, config.metricsHost, () =>
  logger.info('Serving operator health and metrics', { port: config.metricsPort }),
);

elector.run({
  onStartedLeading() {
    if (stopping) return;
    metrics.leading.set(1);
    controller = startController({
      config: kubeConfig,
      kube,
      redis,
      logger,
      metrics,
      isLeader: () => elector.isLeader(),
      workers: config.workers,
      resyncMs: config.resyncMs,
      retry: { baseDelayMs: config.retryBaseDelayMs, maxDelayMs: config.retryMaxDelayMs },
    });
    logger.info('Started the controller', { identity: config.identity });
  },
  async onStoppedLeading() {
    metrics.leading.set(0);
    // Writes are already refused; stop watching and wait for reconciles under way.
    await controller?.stop();
    controller = undefined;
    logger.info('Stopped the controller; competing for the Lease again');
  },
});

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info('Stopping the operator', { signal });
  await controller?.stop();
  await elector.stop();
  await redis.close();
  server.close();
  logger.on('finish', () => process.exit(0));
  logger.end();
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
