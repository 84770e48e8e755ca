/**
 * The packaging tests' API server: the operator tests' control plane with an audit log of
 * every request one user makes, and small helpers to read objects and run kubectl and helm
 * against it.
 */
import { KubernetesObjectApi, type KubeConfig } from '@kubernetes/client-node';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { kubeConfigFor } from '../harness/kube.ts';
import { helm, type RunResult } from './tools.ts';

export interface AuditedCluster {
  plane: ControlPlane;
  config: KubeConfig;
  /** A scratch folder, removed by stop(). */
  work: string;
  /** JSON lines of the audited user's requests. */
  auditLog: string;
  /** kubectl as the admin; throws with kubectl's message on failure. */
  kubectl(...args: string[]): string;
  helm(...args: string[]): RunResult;
  read(apiVersion: string, kind: string, name: string, namespace?: string): Promise<unknown>;
  exists(apiVersion: string, kind: string, name: string, namespace?: string): Promise<boolean>;
  /** A BlobCache whose status has caught up with its spec. */
  reconciled(name: string, namespace: string): Promise<boolean>;
  /** A kubeconfig file that authenticates with `token` (e.g. a ServiceAccount's). */
  kubeconfigWithToken(token: string, path: string): void;
  stop(): Promise<void>;
}

export async function startAuditedCluster(auditedUser: string): Promise<AuditedCluster> {
  const work = await mkdtemp(join(tmpdir(), 'blobcache-packaging-'));
  const auditLog = join(work, 'audit.log');
  const policy = join(work, 'audit-policy.yaml');
  // Metadata of every request of that user, nothing else.
  writeFileSync(
    policy,
    [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '  - level: Metadata',
      `    users: ["${auditedUser}"]`,
      '  - level: None',
      '',
    ].join('\n'),
  );
  const plane = await startControlPlane({
    apiServerArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`],
  });
  const config = kubeConfigFor(plane);
  const read = (apiVersion: string, kind: string, name: string, namespace?: string) =>
    KubernetesObjectApi.makeApiClient(config).read({
      apiVersion,
      kind,
      metadata: { name, namespace },
    });
  return {
    plane,
    config,
    work,
    auditLog,
    kubectl(...args) {
      const result = plane.kubectl(...args);
      if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    },
    helm: (...args) => helm(...args, '--kubeconfig', plane.kubeconfigPath),
    read,
    exists: (apiVersion, kind, name, namespace) =>
      read(apiVersion, kind, name, namespace).then(
        () => true,
        (error: { code?: number }) => {
          if (error.code === 404) return false;
          throw error;
        },
      ),
    async reconciled(name, namespace) {
      const cache = (await read('blobcache.io/v1alpha1', 'BlobCache', name, namespace)) as {
        metadata: { generation?: number };
        status?: { observedGeneration?: number };
      };
      return cache.status?.observedGeneration === cache.metadata.generation;
    },
    kubeconfigWithToken(token, path) {
      writeFileSync(
        path,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [
            {
              name: 'test',
              cluster: {
                server: plane.server,
                'certificate-authority-data': Buffer.from(plane.caData).toString('base64'),
              },
            },
          ],
          users: [{ name: 'token', user: { token } }],
          contexts: [{ name: 'test', context: { cluster: 'test', user: 'token' } }],
          'current-context': 'test',
        }),
      );
    },
    async stop() {
      await plane.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
}
