import {
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache as InformerCache,
} from '@kubernetes/client-node';
import type { Logger } from 'winston';
import type { BlobCache } from '../api/v1alpha1/types.generated.ts';
import { collectionPath, TYPES, type WatchedType } from '../kube/access.ts';
import type { ObjectCache } from '../kube/cache.ts';
import type { TypeRef } from '../kube/client.ts';
import { listAll } from '../kube/raw-list.ts';
import { fingerprint, keysOf } from './predicates.ts';

export interface Watches {
  /** The informers' objects, for reads (see withCache). */
  cache: ObjectCache;
  /** Resolves once every informer has listed its objects (reads before that could miss some). */
  synced: Promise<void>;
  /** Every key seen so far (re-enqueued after a watch restarts). */
  knownKeys(): string[];
  stop(): Promise<void>;
}

const typeKey = (type: TypeRef): string => `${type.apiVersion}/${type.kind}`;

/**
 * Runs one informer per watched type and keeps them alive: client-node informers re-list
 * on 410 Gone but stop on any other error, so each is restarted with a back-off (1 s
 * doubling to 30 s), and after a restart every known key is enqueued again so that nothing
 * missed while the watch was down stays unreconciled. An event enqueues the BlobCaches it
 * concerns only when the object changed in a way that matters (see predicates.ts).
 */
export function startWatches(options: {
  config: KubeConfig;
  watched: readonly WatchedType[];
  enqueue: (key: string) => void;
  logger: Logger;
  /** @default setTimeout-based sleep; injectable for tests. */
  delay?: (ms: number) => Promise<void>;
}): Watches {
  const { config, watched, enqueue, logger } = options;
  const delay =
    options.delay ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const known = new Set<string>();
  const informers = new Map<string, Informer<KubernetesObject> & InformerCache<KubernetesObject>>();
  const started: Promise<void>[] = [];
  const seen = new Map<string, string>();
  let stopped = false;

  const cache: ObjectCache = {
    has: (type) => informers.has(typeKey(type)),
    get: (type, namespace, name) => informers.get(typeKey(type))?.get(name, namespace),
    list: (type, namespace) => [...(informers.get(typeKey(type))?.list(namespace) ?? [])],
  };
  const blobCachesIn = (namespace: string) => cache.list(TYPES.BlobCache, namespace) as BlobCache[];

  for (const { type, labelSelector } of watched) {
    const path = collectionPath(type);
    // start() resolves whether or not its list succeeded (a failure goes to 'error').
    let listed = false;
    const list = async () => {
      const result = await listAll(config, type, path, labelSelector);
      listed = true;
      return result;
    };
    const informer = makeInformer(config, path, list, labelSelector);
    informers.set(typeKey(type), informer);
    const notify = (object: KubernetesObject, deleted: boolean): void => {
      const id = `${typeKey(type)}/${object.metadata?.uid ?? ''}`;
      const print = fingerprint(type, object);
      if (deleted) seen.delete(id);
      else if (seen.get(id) === print) return;
      else seen.set(id, print);
      for (const key of keysOf(type, object, blobCachesIn)) {
        known.add(key);
        enqueue(key);
      }
    };
    informer.on('add', (object) => notify(object, false));
    informer.on('update', (object) => notify(object, false));
    informer.on('delete', (object) => notify(object, true));
    let backoff = 1_000;
    informer.on('connect', () => {
      backoff = 1_000;
    });
    let onSynced!: () => void;
    started.push(new Promise<void>((resolve) => (onSynced = resolve)));
    const restartLater = (error: unknown): void => {
      if (stopped) return;
      logger.warn('Watch failed; restarting it', {
        watch: type.plural,
        retryInMs: backoff,
        error: String(error),
      });
      const wait = backoff;
      backoff = Math.min(backoff * 2, 30_000);
      void delay(wait).then(async () => {
        if (stopped) return;
        try {
          await informer.start();
          if (listed) onSynced();
          logger.info('Restarted watch', { watch: type.plural });
          for (const key of known) enqueue(key);
        } catch (restartError) {
          restartLater(restartError);
        }
      });
    };
    informer.on('error', restartLater);
    informer.start().then(() => {
      if (listed) onSynced();
    }, restartLater);
  }
  return {
    cache,
    synced: Promise.all(started).then(() => undefined),
    knownKeys: () => [...known],
    async stop() {
      stopped = true;
      await Promise.allSettled([...informers.values()].map((informer) => informer.stop()));
    },
  };
}
