/**
 * The chart without a cluster: `helm lint` and `helm template` with the default values and
 * with non-trivial ones, what the rendered objects promise (secure defaults, probes, the
 * downward API, RBAC without exec or Secret reads), and values.schema.json refusing bad
 * values with a message that names the value.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { BLOBCACHE_IMAGE, IMAGES, VERSION } from '../../scripts/image/spec.ts';
import { CHART, find, helm, renderChart, type Manifest } from './tools.ts';

const PRODUCTION_VALUES = join(import.meta.dirname, 'fixtures/values-production.yaml');
const MONITORING_API = ['--api-versions', 'monitoring.coreos.com/v1'];

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  command: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext: Record<string, unknown>;
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  [field: string]: unknown;
}
const podOf = (manifests: Manifest[]) =>
  (find(manifests, 'Deployment') as unknown as { spec: { template: { spec: PodSpec } } }).spec
    .template.spec;

describe('the Helm chart', function () {
  this.timeout(120_000);

  it('keeps its version and appVersion equal to the project version', () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
      version: string;
      appVersion: string;
    };
    expect(chart.version).to.equal(VERSION);
    expect(chart.appVersion).to.equal(VERSION);
  });

  it('documents every value with a ## @param line, and only values that exist', () => {
    const text = readFileSync(join(CHART, 'values.yaml'), 'utf8');
    const documented = [...text.matchAll(/^\s*## @param ([\w.]+) \S/gm)].map((match) => match[1]!);
    const paths: string[] = [];
    const walk = (value: unknown, path: string) => {
      paths.push(path);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
        for (const [key, child] of Object.entries(value))
          walk(child, path ? `${path}.${key}` : key);
      }
    };
    walk(parse(text), '');
    // A value is documented by its own line or by one of its parents' (e.g. `resources`).
    const covered = (path: string) =>
      documented.some((key) => path === key || path.startsWith(`${key}.`));
    const leaves = paths.filter(
      (path) => path !== '' && !paths.some((p) => p.startsWith(`${path}.`)),
    );
    expect(
      leaves.filter((path) => !covered(path)),
      'values without @param',
    ).to.deep.equal([]);
    expect(
      documented.filter((key) => !paths.includes(key)),
      '@param of no value',
    ).to.deep.equal([]);
  });

  it("defaults BlobCaches to the images npm run image builds (the CRD's defaults)", () => {
    const crd = parse(readFileSync(join(CHART, 'crds/blobcache.io_blobcaches.yaml'), 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: unknown } }[] };
    };
    type Node = { properties?: Record<string, Node>; default?: unknown };
    const spec = (crd.spec.versions[0]!.schema.openAPIV3Schema as Node).properties!.spec!;
    const image = (tier: string) => spec.properties![tier]!.properties!.image!.default;
    expect(image('http')).to.equal(`${IMAGES.blobcache.repository}:${VERSION}`);
    expect(image('redis')).to.equal(`${IMAGES.redis.repository}:${VERSION}`);
  });

  it('passes helm lint --strict with the default values and with non-trivial ones', () => {
    // helm lint cannot be told that the monitoring API exists: lint those objects off
    // (helm template renders them below).
    const noMonitors = ['serviceMonitor', 'podMonitor', 'prometheusRule']
      .map((name) => `metrics.${name}.enabled=false`)
      .join(',');
    for (const args of [[], ['-f', PRODUCTION_VALUES, '--set', noMonitors]]) {
      const linted = helm('lint', '--strict', CHART, ...args);
      expect(linted.status, linted.stdout + linted.stderr).to.equal(0);
      expect(linted.stdout).to.include('0 chart(s) failed');
    }
  });

  it('renders the operator with secure defaults, probes and the downward API', () => {
    const pod = podOf(renderChart());
    expect(pod.securityContext).to.deep.include({ runAsNonRoot: true, runAsUser: 1000 });
    const [operator] = pod.containers;
    expect(operator!.securityContext).to.deep.equal({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(operator!.resources.requests).to.have.keys('cpu', 'memory');
    expect(operator!.resources.limits).to.have.key('memory');
    expect(operator!.livenessProbe.httpGet).to.deep.equal({ path: '/healthz', port: 'metrics' });
    expect(operator!.readinessProbe.httpGet).to.deep.equal({ path: '/readyz', port: 'metrics' });
    const fieldOf = (name: string) =>
      operator!.env.find((variable) => variable.name === name)?.valueFrom?.fieldRef?.fieldPath;
    expect(fieldOf('POD_NAME')).to.equal('metadata.name');
    expect(fieldOf('OPERATOR_NAMESPACE')).to.equal('metadata.namespace');
    // The image and its operator entry point, as the image script declares them.
    expect(operator!.image).to.equal(`${BLOBCACHE_IMAGE.repository}:${VERSION}`);
    expect(operator!.command).to.deep.equal(BLOBCACHE_IMAGE.entryPoints.operator);
    expect(operator!.imagePullPolicy).to.equal('IfNotPresent');
  });

  it('renders non-trivial values where they belong', () => {
    const manifests = renderChart('-f', PRODUCTION_VALUES, ...MONITORING_API);
    const pod = podOf(manifests);
    const [operator] = pod.containers;
    expect(operator!.image).to.equal(
      'registry.example.internal:5000/platform/blobcache@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',
    );
    expect(operator!.imagePullPolicy).to.equal('Always');
    expect(pod.imagePullSecrets).to.deep.equal([{ name: 'registry-credentials' }]);
    expect(pod.serviceAccountName).to.equal('cache-operator-sa');
    expect(pod.priorityClassName).to.equal('system-cluster-critical');
    expect(pod.nodeSelector).to.deep.equal({ 'kubernetes.io/os': 'linux' });
    expect(operator!.ports).to.deep.equal([
      { name: 'metrics', containerPort: 9100, protocol: 'TCP' },
    ]);
    expect(operator!.env).to.deep.include({ name: 'OPERATOR_METRICS_PORT', value: '9100' });
    expect(operator!.env).to.deep.include({ name: 'OPERATOR_LOG_LEVEL', value: 'debug' });
    expect(operator!.env).to.deep.include({ name: 'OPERATOR_WORKERS', value: '4' });
    const deployment = find(manifests, 'Deployment', 'cache-operator') as { spec?: unknown };
    expect(deployment.spec).to.deep.include({ replicas: 2 });
    const binding = find(manifests, 'ClusterRoleBinding') as { subjects?: unknown };
    expect(binding.subjects).to.deep.equal([
      { kind: 'ServiceAccount', name: 'cache-operator-sa', namespace: 'blobcache-system' },
    ]);
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']) {
      expect(find(manifests, kind).metadata.labels).to.deep.include({ release: 'prometheus' });
    }
    const rule = find(manifests, 'PrometheusRule') as { spec?: { groups?: unknown[] } };
    expect(rule.spec?.groups).to.have.length.greaterThan(0);
    const dashboard = find(manifests, 'ConfigMap', 'cache-operator-dashboard') as unknown as {
      data: Record<string, string>;
    };
    expect((JSON.parse(dashboard.data['blobcache.json']!) as { uid: string }).uid).to.equal(
      'blobcache',
    );
  });

  it('leaves out the ServiceAccount and the RBAC when asked to', () => {
    const manifests = renderChart(
      '--set',
      'serviceAccount.create=false,serviceAccount.name=existing,rbac.create=false',
    );
    const kinds = manifests.map((manifest) => manifest.kind);
    for (const kind of ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role'])
      expect(kinds).to.not.include(kind);
    expect(podOf(manifests).serviceAccountName).to.equal('existing');
  });

  it('grants no wildcard, no Pod exec, no Pod or Node writes, and never changes a Secret', () => {
    const rules = renderChart()
      .filter((manifest) => manifest.kind === 'ClusterRole' || manifest.kind === 'Role')
      .flatMap((manifest) => manifest.rules as { resources: string[]; verbs: string[] }[]);
    expect(rules).to.have.length.greaterThan(0);
    const reads = ['get', 'list', 'watch'];
    for (const rule of rules) {
      expect(rule.verbs).to.not.include('*');
      expect(rule.resources).to.not.include('*');
      expect(rule.resources).to.not.include('pods/exec');
      if (rule.resources.includes('pods') || rule.resources.includes('nodes')) {
        expect(reads).to.include.members(rule.verbs);
      }
      // Generated Secrets are made once and never rewritten (that would rotate tokens).
      if (rule.resources.includes('secrets')) {
        expect(rule.verbs).to.not.include('update');
        expect(rule.verbs).to.not.include('patch');
      }
    }
  });

  describe('values.schema.json refuses bad values, naming them', () => {
    const cases: [rule: string, args: string[], message: RegExp][] = [
      [
        'image.repository is a repository name',
        ['--set', 'image.repository=Blob Cache'],
        /\/image\/repository.*does not match pattern/,
      ],
      ['image.tag is a tag', ['--set', 'image.tag=v1/x'], /\/image\/tag.*does not match/],
      ['image.digest is sha256:<hex>', ['--set', 'image.digest=md5:abc'], /\/image\/digest/],
      [
        'image.pullPolicy is a pull policy',
        ['--set', 'image.pullPolicy=Sometimes'],
        /\/image\/pullPolicy.*must be one of 'Always', 'IfNotPresent', 'Never'/,
      ],
      [
        'image takes no other keys',
        ['--set', 'image.name=x'],
        /\/image.*additional properties 'name' not allowed/,
      ],
      [
        'an image pull secret has a name',
        ['--set', 'imagePullSecrets[0].secret=x'],
        /\/imagePullSecrets\/0/,
      ],
      ['replicaCount is at least 1', ['--set', 'replicaCount=0'], /\/replicaCount.*minimum/],
      [
        'replicaCount is a whole number',
        ['--set', 'replicaCount=1.5'],
        /\/replicaCount.*want integer/,
      ],
      [
        'logLevel is a level the operator knows',
        ['--set', 'logLevel=verbose'],
        /\/logLevel.*must be one of 'error', 'warn', 'info', 'debug'/,
      ],
      [
        'fullnameOverride is a DNS label',
        ['--set', 'fullnameOverride=Blob_Cache'],
        /\/fullnameOverride.*does not match/,
      ],
      [
        'annotations are strings',
        ['--set', 'podAnnotations.replicas=3'],
        /\/podAnnotations\/replicas.*want string/,
      ],
      [
        'resources has only requests and limits',
        ['--set', 'resources.request.cpu=1'],
        /\/resources.*additional properties 'request' not allowed/,
      ],
      [
        'terminationGracePeriodSeconds is not negative',
        ['--set', 'terminationGracePeriodSeconds=-1'],
        /\/terminationGracePeriodSeconds.*minimum/,
      ],
      [
        'an existing ServiceAccount is named when none is created',
        ['--set', 'serviceAccount.create=false'],
        /\/serviceAccount\/name.*minLength/,
      ],
      [
        'metrics.port is not a privileged port',
        ['--set', 'metrics.port=80'],
        /\/metrics\/port.*minimum: got 80, want 1,024/,
      ],
      ['metrics.port is a TCP port', ['--set', 'metrics.port=70000'], /\/metrics\/port.*maximum/],
      [
        'a scrape interval is a Prometheus duration',
        ['--set', 'metrics.serviceMonitor.interval=30 seconds'],
        /\/metrics\/serviceMonitor\/interval.*does not match/,
      ],
      [
        'switches are booleans',
        ['--set-string', 'metrics.service.enabled=yes'],
        /\/metrics\/service\/enabled.*want boolean/,
      ],
      [
        'environment values are strings (Kubernetes takes nothing else)',
        ['--set', 'env[0].name=OPERATOR_WORKERS,env[0].value=4'],
        /\/env\/0\/value.*want string/,
      ],
      [
        'a misspelt value is refused, not ignored',
        ['--set', 'replicas=2'],
        /additional properties 'replicas' not allowed/,
      ],
    ];
    for (const [rule, args, message] of cases) {
      it(rule, () => {
        const rendered = helm('template', 'x', CHART, ...args);
        expect(rendered.status, rendered.stdout).to.not.equal(0);
        expect(rendered.stderr).to.include("values don't meet the specifications of the schema");
        expect(rendered.stderr).to.match(message);
      });
    }
  });

  describe('templates refuse combinations that cannot work, saying why', () => {
    it('monitoring objects without the Prometheus Operator CRDs', () => {
      for (const value of ['serviceMonitor', 'podMonitor', 'prometheusRule']) {
        const rendered = helm('template', 'x', CHART, '--set', `metrics.${value}.enabled=true`);
        expect(rendered.status).to.not.equal(0);
        expect(rendered.stderr).to.include(
          `metrics.${value}.enabled needs the Prometheus Operator's CRDs (monitoring.coreos.com/v1)`,
        );
      }
    });

    it('a ServiceMonitor without the Service it scrapes', () => {
      const rendered = helm(
        'template',
        'x',
        CHART,
        ...MONITORING_API,
        '--set',
        'metrics.serviceMonitor.enabled=true,metrics.service.enabled=false',
      );
      expect(rendered.status).to.not.equal(0);
      expect(rendered.stderr).to.include('metrics.serviceMonitor.enabled needs metrics.service');
    });
  });
});
