import {
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'winston';

export interface WatchSpec {
  /** For logs. */
  name: string;
  /** API path of the list/watch, e.g. /apis/apps/v1/deployments. */
  path: string;
  list: () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>;
  labelSelector?: string;
  /** The reconcile keys an object event concerns. */
  keysOf: (object: KubernetesObject) => string[];
}

export interface Watches {
  /** Every key seen so far (re-enqueued after a restart). */
  knownKeys(): string[];
  stop(): Promise<void>;
}

/**
 * Runs one informer per watched kind and keeps them alive: client-node informers re-list
 * on 410 Gone but stop on any other error, so each is restarted with a back-off
 * (1 s doubling to 30 s), and after a restart every known key is enqueued again so that
 * nothing missed while the watch was down stays unreconciled.
 */
export function superviseWatches(options: {
  config: KubeConfig;
  specs: WatchSpec[];
  enqueue: (key: string) => void;
  logger: Logger;
  /** @default setTimeout-based sleep; injectable for tests. */
  delay?: (ms: number) => Promise<void>;
}): Watches {
  const { config, specs, enqueue, logger } = options;
  const delay =
    options.delay ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const known = new Set<string>();
  const informers: Informer<KubernetesObject>[] = [];
  let stopped = false;
  const onObject = (spec: WatchSpec) => (object: KubernetesObject) => {
    for (const key of spec.keysOf(object)) {
      known.add(key);
      enqueue(key);
    }
  };
  for (const spec of specs) {
    const informer = makeInformer(config, spec.path, spec.list as never, spec.labelSelector);
    informers.push(informer);
    for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, onObject(spec));
    let backoff = 1_000;
    informer.on('connect', () => {
      backoff = 1_000;
    });
    const restartLater = (error: unknown): void => {
      if (stopped) return;
      logger.warn('Watch failed; restarting it', {
        watch: spec.name,
        retryInMs: backoff,
        error: String(error),
      });
      const wait = backoff;
      backoff = Math.min(backoff * 2, 30_000);
      void delay(wait).then(async () => {
        if (stopped) return;
        try {
          await informer.start();
          logger.info('Restarted watch', { watch: spec.name });
          for (const key of known) enqueue(key);
        } catch (restartError) {
          restartLater(restartError);
        }
      });
    };
    informer.on('error', restartLater);
    informer.start().catch(restartLater);
  }
  return {
    knownKeys: () => [...known],
    async stop() {
      stopped = true;
      await Promise.allSettled(informers.map((informer) => informer.stop()));
    },
  };
}
