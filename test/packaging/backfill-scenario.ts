/**
 * A step of the operator's run with the chart's ServiceAccount (operator-run.ts): a cold
 * start makes it create a backfill Job, and turning backfill off makes it delete it, so
 * the audit log shows the Job verbs the chart grants in use.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import type { AuditedCluster } from './cluster.ts';

type Until = <T>(what: string, check: () => Promise<T | null | undefined | false>) => Promise<T>;

export async function coldStartBackfill(
  cluster: AuditedCluster,
  namespace: string,
  until: Until,
): Promise<void> {
  const kubectl = (...args: string[]) => cluster.kubectl(...args);
  // A one-node cache whose pod stands for a real redis-server on a loopback address:
  // membership creates the cluster and writes its incarnation, a cold start.
  const apply = join(cluster.work, 'cold.json');
  writeFileSync(
    apply,
    JSON.stringify({
      apiVersion: 'blobcache.io/v1alpha1',
      kind: 'BlobCache',
      metadata: { name: 'cache', namespace },
      spec: {
        redis: { shards: 1, replicasPerShard: 0 },
        durability: 'Sync',
        store: { s3: { bucket: 'cold' } },
        backfill: { parallelism: 1 },
      },
    }),
  );
  kubectl('apply', '-f', apply);
  const encoded = await until('the generated Redis password', () =>
    Promise.resolve(
      kubectl(
        'get',
        'secret',
        'cache-redis',
        '-n',
        namespace,
        '--ignore-not-found',
        '-o',
        'jsonpath={.data.password}',
      ).trim(),
    ),
  );
  const redis = await LoopbackRedis.create({
    dir: join(cluster.work, 'redis'),
    password: Buffer.from(encoded, 'base64').toString('utf8'),
  });
  try {
    const [pod] = await redis.addPods(0, 1);
    const manifest = join(cluster.work, 'cold-pod.json');
    writeFileSync(
      manifest,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: pod!.name,
          namespace,
          labels: {
            'app.kubernetes.io/managed-by': 'blobcache-operator',
            'app.kubernetes.io/name': 'blobcache',
            'app.kubernetes.io/instance': 'cache',
            'app.kubernetes.io/component': 'redis',
            'blobcache.io/shard': '0',
          },
        },
        spec: {
          containers: [
            {
              name: 'redis',
              image: 'redis',
              ports: [{ name: 'redis', containerPort: pod!.port }],
            },
          ],
        },
      }),
    );
    kubectl('create', '-f', manifest);
    kubectl(
      'patch',
      'pod',
      pod!.name,
      '-n',
      namespace,
      '--subresource=status',
      '--type',
      'merge',
      '-p',
      JSON.stringify({
        status: { phase: 'Running', podIP: pod!.ip, podIPs: [{ ip: pod!.ip }] },
      }),
    );
    const jobs = () =>
      kubectl(
        'get',
        'jobs',
        '-n',
        namespace,
        '-l',
        'app.kubernetes.io/instance=cache',
        '-o',
        'name',
      ).trim();
    await until('the backfill Job of the new data set', () =>
      Promise.resolve(jobs().startsWith('job.batch/cache-backfill-')),
    );
    kubectl(
      'patch',
      'blobcache',
      'cache',
      '-n',
      namespace,
      '--type',
      'merge',
      '-p',
      JSON.stringify({ spec: { backfill: { policy: 'Never' } } }),
    );
    await until('the backfill Job to be deleted', () => Promise.resolve(jobs() === ''));
  } finally {
    await redis.stop();
  }
}
