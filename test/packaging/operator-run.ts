/**
 * The operator run from source with a token of the chart's ServiceAccount, against the
 * audited API server where the chart is installed: it reconciles both samples, prunes
 * what the spec no longer asks for, recreates its Lease, and is never refused a request.
 * A suite of install.test.ts, which installs the chart first and checks the audit log after.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { freshNamespace } from '../harness/kube.ts';
import { freePorts } from '../harness/services.ts';
import type { AuditedCluster } from './cluster.ts';
import { readAuditLog } from './rbac.ts';

export const RELEASE = 'blobcache-operator';
export const RELEASE_NAMESPACE = 'blobcache-system';
export const OPERATOR_USER = `system:serviceaccount:${RELEASE_NAMESPACE}:${RELEASE}`;
const OWNER_LABELS = { 'app.kubernetes.io/managed-by': 'blobcache-operator' };

export function operatorWithTokenSuite(getCluster: () => AuditedCluster): void {
  const kubectl = (...args: string[]) => getCluster().kubectl(...args);
  const token = () => kubectl('create', 'token', RELEASE, '-n', RELEASE_NAMESPACE).trim();

  describe("the operator, with a token of the chart's ServiceAccount", () => {
    let operator: ChildProcess;
    let exited: Promise<number | null>;
    let namespace: string;
    const logPath = () => join(getCluster().work, 'operator.log');
    /** Waits for `what`; on a timeout the error carries the operator's last log lines. */
    const until = async <T>(what: string, check: () => Promise<T | null | undefined | false>) =>
      eventually(what, check, { timeoutMs: 120_000 }).catch((error: unknown) => {
        const tail = readFileSync(logPath(), 'utf8').split('\n').slice(-6);
        throw new Error(`${String(error)}\nThe operator's last log lines:\n${tail.join('\n')}`);
      });

    before(async () => {
      const kubeconfig = join(getCluster().work, 'operator.kubeconfig');
      getCluster().kubeconfigWithToken(token(), kubeconfig);
      namespace = await freshNamespace(getCluster().config, 'pkg');
      for (const sample of ['minimal', 'production']) {
        kubectl('apply', '-n', namespace, '-f', join(REPO_ROOT, 'crds/samples', `${sample}.yaml`));
      }
      const log = openSync(logPath(), 'a');
      operator = spawn(process.execPath, ['operator/src/main.ts'], {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          KUBECONFIG: kubeconfig,
          OPERATOR_NAMESPACE: RELEASE_NAMESPACE,
          POD_NAME: 'operator-under-test',
          OPERATOR_METRICS_PORT: String(await freePorts(1)),
        },
        stdio: ['ignore', log, log],
      });
      exited = new Promise((resolve) => operator.once('exit', resolve));
    });
    after(() => {
      if (operator !== undefined && operator.exitCode === null && operator.signalCode === null) {
        operator.kill('SIGKILL');
      }
    });

    it('reconciles both samples', async () => {
      await until('both samples to be reconciled', async () => {
        const done =
          (await getCluster().reconciled('droplets', namespace)) &&
          (await getCluster().reconciled('packages', namespace));
        return (
          done &&
          getCluster().exists(
            'autoscaling/v2',
            'HorizontalPodAutoscaler',
            'packages-http',
            namespace,
          )
        );
      });
      for (const [apiVersion, kind, name] of [
        ['apps/v1', 'Deployment', 'droplets-http'],
        ['apps/v1', 'StatefulSet', 'droplets-redis-2'],
        ['apps/v1', 'StatefulSet', 'packages-redis-5'],
        ['v1', 'Service', 'packages'],
        ['v1', 'ConfigMap', 'packages-config'],
        ['policy/v1', 'PodDisruptionBudget', 'packages-redis-0'],
        ['v1', 'Secret', 'droplets-api-tokens'],
        ['v1', 'Secret', 'packages-redis'],
      ] as const) {
        expect(await getCluster().exists(apiVersion, kind, name, namespace), `${kind} ${name}`).to
          .be.true;
      }
    });

    it('reads the zone of the Node a Redis pod runs on (and nothing else of Nodes)', async () => {
      // A Redis pod as its StatefulSet would make it, scheduled on a Node in zone a (no
      // kubelet runs it here: it never gets an IP, so Redis itself is never asked).
      const node = `${namespace}-zone-a`;
      const manifest = join(getCluster().work, 'redis-pod.json');
      writeFileSync(
        manifest,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [
            {
              apiVersion: 'v1',
              kind: 'Node',
              metadata: { name: node, labels: { 'topology.kubernetes.io/zone': 'a' } },
            },
            {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: {
                name: 'droplets-redis-0-0',
                namespace,
                labels: {
                  ...OWNER_LABELS,
                  'app.kubernetes.io/name': 'blobcache',
                  'app.kubernetes.io/instance': 'droplets',
                  'app.kubernetes.io/component': 'redis',
                  'blobcache.io/shard': '0',
                },
              },
              spec: { nodeName: node, containers: [{ name: 'redis', image: 'redis' }] },
            },
          ],
        }),
      );
      kubectl('create', '-f', manifest);
      await until('the operator to read the Node', () =>
        Promise.resolve(
          readAuditLog(getCluster().auditLog, OPERATOR_USER).some(
            (use) => use.resource === 'nodes' && use.verb === 'get' && use.name === node,
          ),
        ),
      );
    });

    it('prunes what the spec no longer asks for', async () => {
      const patch = (name: string, body: object) =>
        kubectl(
          'patch',
          'blobcache',
          name,
          '-n',
          namespace,
          '--type',
          'merge',
          '-p',
          JSON.stringify(body),
        );
      // A shard scaled away (its pods never ran, so nothing is left to drain).
      patch('packages', { spec: { redis: { shards: 5 } } });
      // An autoscaler turned off.
      kubectl(
        'patch',
        'blobcache',
        'packages',
        '-n',
        namespace,
        '--type',
        'json',
        '-p',
        '[{"op":"remove","path":"/spec/http/autoscaling"}]',
      );
      // The generated API tokens replaced by the user's own Secret: the operator deletes the
      // generated one once the HTTP pods have rolled to the new one. No Deployment controller
      // runs here, so the test reports the rollout done, as that controller would.
      const deployment = () =>
        getCluster().read('apps/v1', 'Deployment', 'droplets-http', namespace) as Promise<{
          metadata: { generation: number };
          spec: { replicas: number };
        }>;
      const generation = (await deployment()).metadata.generation;
      kubectl(
        'create',
        'secret',
        'generic',
        'droplets-tokens',
        '-n',
        namespace,
        '--from-literal=read-token=r',
        '--from-literal=write-token=w',
      );
      patch('droplets', { spec: { http: { authSecretName: 'droplets-tokens' } } });
      const rolled = await until('the HTTP pods to roll to the new tokens', async () => {
        const current = await deployment();
        return current.metadata.generation > generation && current;
      });
      const { replicas } = rolled.spec;
      kubectl(
        'patch',
        'deployment',
        'droplets-http',
        '-n',
        namespace,
        '--subresource=status',
        '--type',
        'merge',
        '-p',
        JSON.stringify({
          status: {
            observedGeneration: rolled.metadata.generation,
            replicas,
            updatedReplicas: replicas,
          },
        }),
      );
      // Children an older operator version left under other names.
      const uid = (
        JSON.parse(
          kubectl('get', 'blobcache', 'droplets', '-n', namespace, '-o', 'json'),
        ) as KubernetesObject
      ).metadata!.uid!;
      const owned = {
        namespace,
        labels: { ...OWNER_LABELS, 'app.kubernetes.io/instance': 'droplets' },
        ownerReferences: [
          {
            apiVersion: 'blobcache.io/v1alpha1',
            kind: 'BlobCache',
            name: 'droplets',
            uid,
            controller: true,
          },
        ],
      };
      const leftovers = join(getCluster().work, 'leftovers.json');
      writeFileSync(
        leftovers,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'List',
          items: [
            {
              apiVersion: 'v1',
              kind: 'ConfigMap',
              metadata: { name: 'droplets-settings', ...owned },
              data: {},
            },
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              metadata: { name: 'droplets-web', ...owned },
              spec: {
                selector: { matchLabels: { app: 'droplets-web' } },
                template: {
                  metadata: { labels: { app: 'droplets-web' } },
                  spec: { containers: [{ name: 'web', image: 'blobcache/blobcache:0.0.9' }] },
                },
              },
            },
          ],
        }),
      );
      kubectl('create', '-f', leftovers);
      const gone = async (apiVersion: string, kind: string, name: string) =>
        !(await getCluster().exists(apiVersion, kind, name, namespace));
      await until('everything unwanted to be deleted', async () => {
        const all = await Promise.all([
          gone('apps/v1', 'StatefulSet', 'packages-redis-5'),
          gone('v1', 'Service', 'packages-redis-5'),
          gone('policy/v1', 'PodDisruptionBudget', 'packages-redis-5'),
          gone('autoscaling/v2', 'HorizontalPodAutoscaler', 'packages-http'),
          gone('v1', 'Secret', 'droplets-api-tokens'),
          gone('v1', 'ConfigMap', 'droplets-settings'),
          gone('apps/v1', 'Deployment', 'droplets-web'),
        ]);
        return all.every(Boolean);
      });
      // ...and nothing still wanted went with them.
      expect(await getCluster().exists('apps/v1', 'StatefulSet', 'packages-redis-4', namespace)).to
        .be.true;
      expect(await getCluster().exists('v1', 'Secret', 'droplets-tokens', namespace)).to.be.true;
    });

    it('creates its Lease again when it is deleted by hand', async () => {
      kubectl('delete', 'lease', 'blobcache-operator', '-n', RELEASE_NAMESPACE);
      await until('the operator to create its Lease again', () =>
        getCluster().exists(
          'coordination.k8s.io/v1',
          'Lease',
          'blobcache-operator',
          RELEASE_NAMESPACE,
        ),
      );
    });

    it('stops cleanly on SIGTERM, and was never refused a request (no 401, no 403)', async () => {
      operator.kill('SIGTERM');
      expect(await exited).to.equal(0);
      // Handing the Lease back is the operator's last request.
      const uses = await eventually('the Lease hand-over in the audit log', () => {
        const logged = readAuditLog(getCluster().auditLog, OPERATOR_USER);
        const handedOver = logged.some(
          (use) => use.verb === 'update' && use.resource === 'leases' && use.code === 200,
        );
        return Promise.resolve(handedOver && logged);
      });
      expect(uses.length).to.be.greaterThan(20);
      const refused = uses.filter((use) => use.code === 401 || use.code === 403);
      expect(refused.map((use) => `${use.code} ${use.verb} ${use.uri}`)).to.deep.equal([]);
    });
  });
}
