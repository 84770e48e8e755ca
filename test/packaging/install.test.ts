/**
 * The chart installed with Helm into the real API server of the operator tests, and the
 * operator run with exactly the chart's RBAC: it authenticates with a token of the chart's
 * ServiceAccount (from source, and from its image the way a Pod does), and the API
 * server's audit log shows every request it made, to compare with what the chart grants.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { IMAGES } from '../../scripts/image/spec.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { freshNamespace } from '../harness/kube.ts';
import { freePorts } from '../harness/services.ts';
import { startAuditedCluster, type AuditedCluster } from './cluster.ts';
import {
  OPERATOR_USER,
  RELEASE,
  RELEASE_NAMESPACE,
  operatorWithTokenSuite,
} from './operator-run.ts';
import { builtImages, runInImage, stop } from './images.ts';
import { readAuditLog, ungranted, unused, type Grant, type PolicyRule } from './rbac.ts';
import { SKAFFOLD } from './skaffold-config.ts';
import { CHART, renderChart } from './tools.ts';

describe('the chart installed with Helm into a real API server', function () {
  this.timeout(300_000);
  let cluster: AuditedCluster;
  const kubectl = (...args: string[]) => cluster.kubectl(...args);
  const token = () => kubectl('create', 'token', RELEASE, '-n', RELEASE_NAMESPACE).trim();

  before(async function () {
    this.timeout(900_000);
    cluster = await startAuditedCluster(OPERATOR_USER);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('helm install creates the CRDs, the RBAC, the leader Lease and the operator Deployment', () => {
    const installed = cluster.helm(
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
    const pod = (
      JSON.parse(kubectl('get', 'deployment', RELEASE, ...ns, '-o', 'json')) as {
        spec: {
          template: {
            spec: {
              serviceAccountName: string;
              containers: { image: string; command: string[] }[];
            };
          };
        };
      }
    ).spec.template.spec;
    expect(pod.serviceAccountName).to.equal(RELEASE);
    expect(pod.containers[0]!.image).to.equal('blobcache/blobcache:0.1.0');
    expect(pod.containers[0]!.command).to.deep.equal(IMAGES.blobcache.entryPoints.operator);
  });

  it('accepts the dev BlobCache skaffold deploys (server-side dry run)', () => {
    for (const manifest of SKAFFOLD.manifests.rawYaml) {
      kubectl('apply', '--dry-run=server', '-n', 'default', '-f', join(REPO_ROOT, manifest));
    }
  });

  it('grants no Pod exec, no writes to Pods or Nodes, no Secret rewrites (kubectl auth can-i)', () => {
    const can = (...args: string[]) =>
      cluster.plane.kubectl('auth', 'can-i', `--as=${OPERATOR_USER}`, ...args).stdout.trim();
    expect(can('create', 'pods/exec', '-A')).to.equal('no');
    expect(can('delete', 'pods', '-A')).to.equal('no');
    expect(can('update', 'nodes')).to.equal('no');
    expect(can('update', 'secrets', '-A')).to.equal('no');
    expect(can('patch', 'secrets', '-A')).to.equal('no');
    expect(can('delete', 'namespaces')).to.equal('no');
    expect(can('update', 'leases', '-n', 'default')).to.equal('no');
    // ...while what it needs is allowed, in any namespace.
    expect(can('patch', 'statefulsets.apps', '-n', 'anywhere')).to.equal('yes');
    expect(can('create', 'secrets', '-n', 'anywhere')).to.equal('yes');
  });

  operatorWithTokenSuite(() => cluster);

  // Mocha runs a suite's own tests before its nested suites: what must come after the
  // operator's run above lives in a suite of its own.
  describe('afterwards', () => {
    it('the operator image, configured in-cluster with the ServiceAccount token, reconciles a sample', async function () {
      // The image's file system is entered with unshare --root, which needs root.
      if (process.getuid?.() !== 0) this.skip();
      this.timeout(600_000);
      const blobcache = (await builtImages()).blobcache;
      // What the kubelet mounts for the Pod's ServiceAccount, and what it puts in the env.
      const mount = join(blobcache.rootfs, 'var/run/secrets/kubernetes.io/serviceaccount');
      await mkdir(mount, { recursive: true });
      writeFileSync(join(mount, 'token'), token());
      writeFileSync(join(mount, 'ca.crt'), cluster.plane.caData);
      writeFileSync(join(mount, 'namespace'), RELEASE_NAMESPACE);
      const namespace = await freshNamespace(cluster.config, 'incluster');
      kubectl('apply', '-n', namespace, '-f', join(REPO_ROOT, 'crds/samples/minimal.yaml'));
      const operator = runInImage(blobcache, IMAGES.blobcache.entryPoints.operator!, {
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: new URL(cluster.plane.server).port,
        POD_NAME: 'operator-in-image',
        OPERATOR_NAMESPACE: RELEASE_NAMESPACE,
        OPERATOR_METRICS_PORT: String(await freePorts(1)),
      });
      let output = '';
      const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
      operator.stdout!.on('data', keep);
      operator.stderr!.on('data', keep);
      try {
        await eventually(
          'the sample to be reconciled by the operator image',
          async () =>
            (await cluster.reconciled('droplets', namespace)) &&
            cluster.exists('apps/v1', 'Deployment', 'droplets-http', namespace),
          { timeoutMs: 120_000 },
        ).catch((error: unknown) => {
          throw new Error(`${String(error)}\nThe operator's output:\n${output}`);
        });
      } finally {
        expect(await stop(operator), output).to.equal(0);
      }
    });

    it('grants exactly what the operator used: nothing it did is missing, nothing granted went unused', () => {
      // Everything the ServiceAccount did, from source and from the image.
      const uses = readAuditLog(cluster.auditLog, OPERATOR_USER);
      expect(uses.length, 'the operator ran (tests above)').to.be.greaterThan(20);
      expect(uses.filter((use) => use.code === 403).map((use) => use.uri)).to.deep.equal([]);
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
      expect(ungranted(uses, grants), 'requests the chart does not grant').to.deep.equal([]);
      expect(unused(uses, grants), 'grants the operator never used').to.deep.equal([]);
    });

    it('helm upgrade rolls the operator Deployment to a changed value; helm uninstall leaves no operator object', async () => {
      const generation = async () =>
        (
          (await cluster.read('apps/v1', 'Deployment', RELEASE, RELEASE_NAMESPACE)) as {
            metadata: { generation: number };
          }
        ).metadata.generation;
      const before = await generation();
      const upgraded = cluster.helm(
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

      const uninstalled = cluster.helm('uninstall', RELEASE, '-n', RELEASE_NAMESPACE);
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
});
