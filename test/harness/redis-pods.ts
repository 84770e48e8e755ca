/**
 * Pod objects for loopback Redis nodes (`loopback-redis.ts`), as a shard's StatefulSet
 * would make them, so the operator's membership phase lists them and reaches each node at
 * its Pod's IP. An API server alone runs no kubelet: the status is written here.
 */
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import type { RedisPod } from '../../operator/src/redis/model.ts';

/** Creates `pod` in `namespace` with the labels of cache `cache`'s Redis tier. */
export async function createRedisPod(
  core: CoreV1Api,
  namespace: string,
  pod: RedisPod,
  options: { cache?: string; nodeName?: string } = {},
): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: {
        name: pod.name,
        labels: {
          'app.kubernetes.io/name': 'blobcache',
          'app.kubernetes.io/instance': options.cache ?? 'cache',
          'app.kubernetes.io/component': 'redis',
          'app.kubernetes.io/managed-by': 'blobcache-operator',
          'blobcache.io/shard': String(pod.shard),
        },
      },
      spec: {
        ...(options.nodeName === undefined ? {} : { nodeName: options.nodeName }),
        containers: [
          {
            name: 'redis',
            image: 'redis:7.2',
            ports: [{ name: 'redis', containerPort: pod.port }],
          },
        ],
      },
    },
  });
}

/** Writes the status a kubelet would: running, at the loopback node's address. */
export async function markRedisPodRunning(
  core: CoreV1Api,
  namespace: string,
  pod: RedisPod,
): Promise<void> {
  await core.patchNamespacedPodStatus(
    {
      name: pod.name,
      namespace,
      body: { status: { phase: 'Running', podIP: pod.ip, podIPs: [{ ip: pod.ip }] } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}
