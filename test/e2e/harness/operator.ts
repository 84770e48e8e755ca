/**
 * The operator as users install it: the chart with a real Helm, its image imported into
 * every Node's containerd, the operator running as a Pod under the chart's RBAC. Scenarios
 * that need it call `useOperator()`; the install and upgrade scenarios drive Helm and the
 * documented commands themselves (`shell` runs a page's block as written).
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { helmBinary } from '../../packaging/tools.ts';
import { REPO_ROOT } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { cluster } from './cluster.ts';
import { K8S_BIN } from './layout.ts';
import type { KubeNode } from './node.ts';
import { timed } from './progress.ts';
import { projectImages, type ProjectImage } from './project-images.ts';

export const RELEASE = 'blobcache-operator';
export const RELEASE_NAMESPACE = 'blobcache-system';
export const CHART = join(REPO_ROOT, 'charts/blobcache-operator');
/** The Lease the chart names (OPERATOR_LEASE_NAME). */
export const LEASE = 'blobcache-operator';
/** The operator Pods' selector (the chart's selectorLabels). */
export const OPERATOR_SELECTOR = `app.kubernetes.io/name=blobcache-operator,app.kubernetes.io/instance=${RELEASE}`;

/** The environment a user's shell has: helm, kubectl and npm on PATH, KUBECONFIG set. */
export function userEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = [dirname(helmBinary()), K8S_BIN, join(REPO_ROOT, 'node_modules/.bin')];
  return {
    ...process.env,
    PATH: [...path, process.env.PATH ?? ''].join(':'),
    KUBECONFIG: cluster().kubeconfig,
    ...extra,
  };
}

export interface ShellResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` with `bash -euo pipefail` from the repository root, as a user would. */
export function shell(
  script: string,
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ShellResult> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-euo', 'pipefail', '-c', script],
      {
        cwd: REPO_ROOT,
        env: userEnvironment(options.env),
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ status, stdout, stderr });
      },
    );
  });
}

/** Helm as the cluster admin; rejects with Helm's stderr. */
export function helm(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      helmBinary(),
      args,
      { cwd: REPO_ROOT, env: userEnvironment(), timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error === null) resolve(stdout);
        else reject(new Error(`helm ${args.join(' ')}: ${stderr.trim()}`, { cause: error }));
      },
    );
  });
}

/** The ID containerd gives the image `reference` on `node`, or null when it has none. */
export async function imageIdOn(node: KubeNode, reference: string): Promise<string | null> {
  const output = await node.crictl('inspecti', '-o', 'json', reference).catch(() => null);
  if (output === null) return null;
  return (JSON.parse(output) as { status: { id: string } }).status.id;
}

/** Imports the project's images into every Node that lacks them. */
export async function importProjectImages(): Promise<ProjectImage[]> {
  const images = Object.values(await projectImages());
  await Promise.all(
    cluster().nodes.map(async (node) => {
      for (const image of images) {
        if ((await imageIdOn(node, image.reference)) !== image.id) {
          await node.ctr('images', 'import', image.file);
        }
      }
    }),
  );
  return images;
}

interface LeaseObject {
  spec: { holderIdentity?: string };
}

/** The name of the operator Pod holding the Lease, once a Ready operator Pod holds it. */
export async function waitLeader(options: { not?: string } = {}): Promise<string> {
  const { kubectl } = cluster();
  return eventually(
    'a Ready operator Pod to hold the Lease',
    async () => {
      const lease = await kubectl.json<LeaseObject>([
        'get',
        'lease',
        LEASE,
        '-n',
        RELEASE_NAMESPACE,
      ]);
      const holder = lease.spec.holderIdentity;
      if (holder === undefined || holder === options.not) return null;
      const ready = await kubectl.run([
        'get',
        'pod',
        holder,
        '-n',
        RELEASE_NAMESPACE,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return ready === 'True' ? holder : null;
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
}

/** True when the release is installed. */
export async function operatorInstalled(): Promise<boolean> {
  const releases = await helm('list', '-n', RELEASE_NAMESPACE, '-q');
  return releases.split('\n').includes(RELEASE);
}

/**
 * For a `describe` whose scenario needs the operator: installs the chart (the project's
 * images first) unless it is installed, and waits for a Ready leader.
 */
export function useOperator(): void {
  before(async function () {
    this.timeout(900_000);
    await importProjectImages();
    if (!(await operatorInstalled())) {
      await timed('helm install of the operator', () =>
        helm('install', RELEASE, CHART, '--namespace', RELEASE_NAMESPACE, '--create-namespace'),
      );
    }
    await waitLeader();
  });
}
