import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  PolicyV1Api,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'winston';
import { GROUP, KIND, PLURAL, VERSION } from '../api/v1alpha1/types.generated.ts';
import type { KubeClient } from '../kube/client.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { reconcile } from './reconcile.ts';
import { superviseWatches, type WatchSpec } from './watches.ts';
import { WorkQueue } from './work-queue.ts';

const MANAGED = 'app.kubernetes.io/managed-by=blobcache-operator';

export interface Controller {
  stop(): Promise<void>;
}

function ownKey(object: KubernetesObject): string[] {
  const namespace = object.metadata?.namespace ?? '';
  return [`${namespace}/${object.metadata?.name ?? ''}`];
}

function ownerKeys(object: KubernetesObject): string[] {
  const namespace = object.metadata?.namespace ?? '';
  return (object.metadata?.ownerReferences ?? [])
    .filter((owner) => owner.kind === KIND && owner.apiVersion.startsWith(`${GROUP}/`))
    .map((owner) => `${namespace}/${owner.name}`);
}

/** Watches BlobCaches and everything they own, and reconciles each key with a work queue. */
export function startController(options: {
  config: KubeConfig;
  kube: KubeClient;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** @default 2 */
  workers?: number;
}): Controller {
  const { config, kube, logger, metrics } = options;
  const queue = new WorkQueue();
  const apps = config.makeApiClient(AppsV1Api);
  const core = config.makeApiClient(CoreV1Api);
  const policy = config.makeApiClient(PolicyV1Api);
  const autoscaling = config.makeApiClient(AutoscalingV2Api);
  const custom = config.makeApiClient(CustomObjectsApi);
  const owned = (name: string, path: string, list: WatchSpec['list']): WatchSpec => ({
    name,
    path,
    list,
    labelSelector: MANAGED,
    keysOf: ownerKeys,
  });
  const specs: WatchSpec[] = [
    {
      name: 'blobcaches',
      path: `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      list: () =>
        custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as never,
      keysOf: ownKey,
    },
    owned('deployments', '/apis/apps/v1/deployments', () =>
      apps.listDeploymentForAllNamespaces({ labelSelector: MANAGED }),
    ),
    owned('statefulsets', '/apis/apps/v1/statefulsets', () =>
      apps.listStatefulSetForAllNamespaces({ labelSelector: MANAGED }),
    ),
    owned('services', '/api/v1/services', () =>
      core.listServiceForAllNamespaces({ labelSelector: MANAGED }),
    ),
    owned('configmaps', '/api/v1/configmaps', () =>
      core.listConfigMapForAllNamespaces({ labelSelector: MANAGED }),
    ),
    owned('poddisruptionbudgets', '/apis/policy/v1/poddisruptionbudgets', () =>
      policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector: MANAGED }),
    ),
    owned('horizontalpodautoscalers', '/apis/autoscaling/v2/horizontalpodautoscalers', () =>
      autoscaling.listHorizontalPodAutoscalerForAllNamespaces({
        labelSelector: MANAGED,
      }),
    ),
  ];
  const watches = superviseWatches({ config, specs, enqueue: (key) => queue.add(key), logger });

  const worker = async (): Promise<void> => {
    for (let key = await queue.next(); key !== undefined; key = await queue.next()) {
      const [namespace = '', name = ''] = key.split('/');
      const started = Date.now();
      try {
        const result = await reconcile({ kube, logger }, { namespace, name });
        queue.forget(key);
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
        metrics?.reconciles.inc({ result: 'success' });
      } catch (error) {
        const retryInMs = queue.addRateLimited(key);
        metrics?.reconciles.inc({ result: 'error' });
        logger.warn('Failed to reconcile a BlobCache; will retry', {
          key,
          retryInMs,
          error: String(error),
        });
      } finally {
        metrics?.reconcileSeconds.observe((Date.now() - started) / 1000);
        queue.done(key);
      }
    }
  };
  const workers = Array.from({ length: options.workers ?? 2 }, () => worker());
  return {
    async stop() {
      await watches.stop();
      queue.shutdown();
      await Promise.all(workers);
    },
  };
}
