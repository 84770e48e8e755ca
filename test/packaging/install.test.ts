/**
 * The chart installed with Helm into the real API server of the operator tests, and the
 * operator run with exactly the chart's RBAC: it authenticates with a token of the chart's
 * ServiceAccount, and the API server's audit log shows every request it made.
 */
import {
  KubernetesObjectApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../harness/control-plane.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { freshNamespace, kubeConfigFor } from '../harness/kube.ts';
import { freePorts } from '../harness/services.ts';
import { readAuditLog, ungranted, unused, type Grant, type PolicyRule, type Use } from './rbac.ts';
import { IMAGES } from '../../scripts/image/spec.ts';
import { builtImages, runInImage, stop } from './images.ts';
import { SKAFFOLD } from './skaffold-config.ts';
import { CHART, helm, renderChart, type RunResult } from './tools.ts';

const RELEASE = 'blobcache-operator';
const RELEASE_NAMESPACE = 'blobcache-system';
const OPERATOR_USER = `system:serviceaccount:${RELEASE_NAMESPACE}:${RELEASE}`;

describe('the chart installed with Helm into a real API server', function () {
  this.timeout(300_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let work: string;
  let auditLog: string;
  /** What the operator did, for the exact-RBAC check (set by the reconcile test). */
  let uses: Use[] | undefined;

  before(async function () {
    this.timeout(900_000);
    work = await mkdtemp(join(tmpdir(), 'blobcache-packaging-'));
    auditLog = join(work, 'audit.log');
    const policy = join(work, 'audit-policy.yaml');
    // Metadata of every request of the operator's ServiceAccount, nothing else.
    writeFileSync(
      policy,
      [
        'apiVersion: audit.k8s.io/v1',
        'kind: Policy',
        'omitStages: [RequestReceived]',
        'rules:',
        `  - level: Metadata`,
        `    users: ["${OPERATOR_USER}"]`,
        '  - level: None',
        '',
      ].join('\n'),
    );
    plane = await startControlPlane({
      apiServerArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`],
    });
    config = kubeConfigFor(plane);
  });
  after(async () => {
    await plane?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  const kubectl = (...args: string[]): string => {
    const result = plane.kubectl(...args);
    if (result.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  };
  const helmHere = (...args: string[]): RunResult =>
    helm(...args, '--kubeconfig', plane.kubeconfigPath);
  const objects = () => KubernetesObjectApi.makeApiClient(config);
  const read = (apiVersion: string, kind: string, name: string, namespace?: string) =>
    objects().read({ apiVersion, kind, metadata: { name, namespace } });
  const exists = (apiVersion: string, kind: string, name: string, namespace?: string) =>
    read(apiVersion, kind, name, namespace).then(
      () => true,
      (error: { code?: number }) => {
        if (error.code === 404) return false;
        throw error;
      },
    );

  it('helm install creates the CRDs, the RBAC, the leader Lease and the operator Deployment', () => {
    const installed = helmHere(
      'install',
      RELEASE,
      CHART,
      '--namespace',
      RELEASE_NAMESPACE,
      '--create-namespace',
    );
    expect(installed.status, installed.stderr).to.equal(0);
    expect(installed.stdout).to.include('kubectl get blobcache droplets -w');
    expect(
      kubectl(
        'get',
        'crd',
        'blobcaches.blobcache.io',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ),
    ).to.equal('True');
    const ns = ['-n', RELEASE_NAMESPACE];
    for (const object of [
      ['clusterrole', RELEASE],
      ['clusterrolebinding', RELEASE],
      ['role', `${RELEASE}-leader-election`, ...ns],
      ['rolebinding', `${RELEASE}-leader-election`, ...ns],
      ['serviceaccount', RELEASE, ...ns],
      ['service', `${RELEASE}-metrics`, ...ns],
      ['lease', 'blobcache-operator', ...ns],
    ]) {
      expect(kubectl('get', ...object, '-o', 'name')).to.match(/\S/);
    }
    const deployment = JSON.parse(
      kubectl('get', 'deployment', RELEASE, ...ns, '-o', 'json'),
    ) as KubernetesObject & { spec: { template: { spec: Record<string, unknown> } } };
    const pod = deployment.spec.template.spec as {
      serviceAccountName: string;
      containers: { image: string; command: string[] }[];
    };
    expect(pod.serviceAccountName).to.equal(RELEASE);
    expect(pod.containers[0]!.image).to.equal('blobcache/blobcache:0.1.0');
    expect(pod.containers[0]!.command).to.deep.equal(['node', 'dist/operator/src/main.js']);
  });

  it('accepts the dev BlobCache skaffold deploys (server-side dry run)', () => {
    for (const manifest of SKAFFOLD.manifests.rawYaml) {
      const applied = plane.kubectl(
        'apply',
        '--dry-run=server',
        '-n',
        'default',
        '-f',
        join(REPO_ROOT, manifest),
      );
      expect(applied.status, applied.stderr).to.equal(0);
    }
  });

  it('grants no Pod exec, no Secret reads and no writes to Nodes (kubectl auth can-i)', () => {
    const can = (...args: string[]) =>
      plane.kubectl('auth', 'can-i', `--as=${OPERATOR_USER}`, ...args).stdout.trim();
    expect(can('create', 'pods/exec', '-A')).to.equal('no');
    expect(can('get', 'secrets', '-A')).to.equal('no');
    expect(can('list', 'secrets', '-A')).to.equal('no');
    expect(can('update', 'nodes')).to.equal('no');
    expect(can('delete', 'deployments', '-A')).to.equal('no');
    expect(can('update', 'leases', '-n', 'default')).to.equal('no');
    // ...while what it needs is allowed, in any namespace.
    expect(can('patch', 'statefulsets.apps', '-n', 'anywhere')).to.equal('yes');
    expect(can('create', 'secrets', '-n', 'anywhere')).to.equal('yes');
  });

  it('runs the operator with the ServiceAccount token: both samples reconciled, not a single 403', async () => {
    const token = kubectl('create', 'token', RELEASE, '-n', RELEASE_NAMESPACE).trim();
    const kubeconfig = join(work, 'operator.kubeconfig');
    writeFileSync(
      kubeconfig,
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
        users: [{ name: 'operator', user: { token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'operator' } }],
        'current-context': 'test',
      }),
    );
    const namespace = await freshNamespace(config, 'pkg');
    for (const sample of ['minimal', 'production']) {
      kubectl('apply', '-n', namespace, '-f', join(REPO_ROOT, 'crds/samples', `${sample}.yaml`));
    }
    const port = await freePorts(1);
    const log = openSync(join(work, 'operator.log'), 'a');
    const operator = spawn(process.execPath, ['operator/src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        KUBECONFIG: kubeconfig,
        OPERATOR_NAMESPACE: RELEASE_NAMESPACE,
        POD_NAME: 'operator-under-test',
        OPERATOR_METRICS_PORT: String(port),
      },
      stdio: ['ignore', log, log],
    });
    const exited = new Promise<number | null>((resolve) => operator.once('exit', resolve));
    try {
      const reconciled = async (name: string) => {
        const cache = (await read('blobcache.io/v1alpha1', 'BlobCache', name, namespace)) as {
          metadata: { generation?: number };
          status?: { observedGeneration?: number };
        };
        return cache.status?.observedGeneration === cache.metadata.generation;
      };
      await eventually(
        'both samples to be reconciled',
        async () => {
          const done = (await reconciled('droplets')) && (await reconciled('packages'));
          return (
            done &&
            (await exists('autoscaling/v2', 'HorizontalPodAutoscaler', 'packages-http', namespace))
          );
        },
        { timeoutMs: 120_000 },
      );
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
        expect(await exists(apiVersion, kind, name, namespace), `${kind} ${name}`).to.be.true;
      }
      // Turning autoscaling off makes the operator delete the autoscaler it made.
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
      await eventually(
        'the autoscaler to be deleted',
        async () =>
          !(await exists('autoscaling/v2', 'HorizontalPodAutoscaler', 'packages-http', namespace)),
      );
      // A Lease deleted by hand is created again by the leader.
      kubectl('delete', 'lease', 'blobcache-operator', '-n', RELEASE_NAMESPACE);
      await eventually('the operator to create its Lease again', () =>
        exists('coordination.k8s.io/v1', 'Lease', 'blobcache-operator', RELEASE_NAMESPACE),
      );
    } catch (error) {
      const tail = readFileSync(join(work, 'operator.log'), 'utf8')
        .split('\n')
        .slice(-6)
        .map((line) => line.slice(0, 600));
      throw new Error(`${String(error)}\nThe operator's last log lines:\n${tail.join('\n')}`);
    } finally {
      operator.kill('SIGTERM');
    }
    expect(await exited, 'the operator exits cleanly on SIGTERM').to.equal(0);
    // The release of the Lease is the operator's last request.
    uses = await eventually('the Lease release in the audit log', () => {
      const logged = readAuditLog(auditLog, OPERATOR_USER);
      const released = logged.some(
        (use) => use.verb === 'update' && use.resource === 'leases' && use.code === 200,
      );
      return Promise.resolve(released && logged);
    });
    const refused = uses.filter((use) => use.code === 403 || use.code === 401);
    expect(refused.map((use) => `${use.code} ${use.verb} ${use.uri}`)).to.deep.equal([]);
    expect(uses.length).to.be.greaterThan(20);
  });

  it('the operator image, configured in-cluster with the ServiceAccount token, reconciles a sample', async function () {
    // The image's file system is entered with unshare --root, which needs root.
    if (process.getuid?.() !== 0) this.skip();
    this.timeout(600_000);
    const blobcache = (await builtImages()).blobcache;
    // What the kubelet mounts for the Pod's ServiceAccount, and what it puts in the env.
    const mount = join(blobcache.rootfs, 'var/run/secrets/kubernetes.io/serviceaccount');
    await mkdir(mount, { recursive: true });
    writeFileSync(
      join(mount, 'token'),
      kubectl('create', 'token', RELEASE, '-n', RELEASE_NAMESPACE).trim(),
    );
    writeFileSync(join(mount, 'ca.crt'), plane.caData);
    writeFileSync(join(mount, 'namespace'), RELEASE_NAMESPACE);
    const namespace = await freshNamespace(config, 'incluster');
    kubectl('apply', '-n', namespace, '-f', join(REPO_ROOT, 'crds/samples/minimal.yaml'));
    const port = await freePorts(1);
    const operator = runInImage(blobcache, IMAGES.blobcache.entryPoints.operator!, {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: new URL(plane.server).port,
      POD_NAME: 'operator-in-image',
      OPERATOR_NAMESPACE: RELEASE_NAMESPACE,
      OPERATOR_METRICS_PORT: String(port),
    });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    operator.stdout!.on('data', keep);
    operator.stderr!.on('data', keep);
    try {
      await eventually(
        'the sample to be reconciled by the operator image',
        async () => {
          const cache = (await read(
            'blobcache.io/v1alpha1',
            'BlobCache',
            'droplets',
            namespace,
          )) as {
            metadata: { generation?: number };
            status?: { observedGeneration?: number };
          };
          return (
            cache.status?.observedGeneration === cache.metadata.generation &&
            (await exists('apps/v1', 'Deployment', 'droplets-http', namespace))
          );
        },
        { timeoutMs: 120_000 },
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}\nThe operator's output:\n${output}`);
      });
    } finally {
      expect(await stop(operator), output).to.equal(0);
    }
  });

  it('grants exactly what the operator used: nothing it did is missing, nothing granted went unused', () => {
    expect(uses, 'the operator ran with the token (test above)').to.not.equal(undefined);
    // Everything the ServiceAccount did so far, the operator image's run included.
    const all = readAuditLog(auditLog, OPERATOR_USER);
    expect(all.filter((use) => use.code === 403).map((use) => use.uri)).to.deep.equal([]);
    const manifests = renderChart();
    const rulesOf = (kind: string) =>
      manifests
        .filter((manifest) => manifest.kind === kind)
        .map((manifest) => ({
          role: `${kind} ${manifest.metadata.name}`,
          rules: manifest.rules as PolicyRule[],
        }));
    const grants: Grant[] = [
      ...rulesOf('ClusterRole'),
      ...rulesOf('Role').map((grant) => ({ ...grant, namespace: RELEASE_NAMESPACE })),
    ];
    expect(ungranted(all, grants), 'requests the chart does not grant').to.deep.equal([]);
    expect(unused(all, grants), 'grants the operator never used').to.deep.equal([]);
  });

  it('helm upgrade rolls the operator Deployment to a changed value; helm uninstall leaves no operator object', async () => {
    const generation = async () =>
      (
        (await read('apps/v1', 'Deployment', RELEASE, RELEASE_NAMESPACE)) as {
          metadata: { generation: number };
        }
      ).metadata.generation;
    const before = await generation();
    const upgraded = helmHere(
      'upgrade',
      RELEASE,
      CHART,
      '-n',
      RELEASE_NAMESPACE,
      '--set',
      'logLevel=debug',
    );
    expect(upgraded.status, upgraded.stderr).to.equal(0);
    expect(await generation()).to.be.greaterThan(before);
    const env = kubectl(
      'get',
      'deployment',
      RELEASE,
      '-n',
      RELEASE_NAMESPACE,
      '-o',
      'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="OPERATOR_LOG_LEVEL")].value}',
    );
    expect(env).to.equal('debug');

    const uninstalled = helmHere('uninstall', RELEASE, '-n', RELEASE_NAMESPACE);
    expect(uninstalled.status, uninstalled.stderr).to.equal(0);
    const left = parseAllDocuments(
      kubectl(
        'get',
        'deployments,services,serviceaccounts,roles,rolebindings,leases,configmaps',
        '-n',
        RELEASE_NAMESPACE,
        '-o',
        'yaml',
      ),
    )
      .flatMap((document) => (document.toJS() as { items: KubernetesObject[] }).items)
      .map((object) => `${object.kind} ${object.metadata?.name}`)
      // Every namespace has these two from the API server itself.
      .filter((name) => !['ServiceAccount default', 'ConfigMap kube-root-ca.crt'].includes(name));
    expect(left).to.deep.equal([]);
    expect(
      kubectl(
        'get',
        'clusterroles,clusterrolebindings',
        '-l',
        `app.kubernetes.io/instance=${RELEASE}`,
        '-o',
        'name',
      ),
    ).to.equal('');
    // Helm never deletes CRDs (that would delete every BlobCache): they stay.
    expect(kubectl('get', 'crd', 'blobcaches.blobcache.io', '-o', 'name')).to.match(/blobcaches/);
  });
});
