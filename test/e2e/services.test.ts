import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { cluster } from './harness/cluster.ts';
import { SERVICE_CIDR } from './harness/layout.ts';
import {
  clientContainer,
  clientPod,
  spreadOverZones,
  useNamespace,
  waitRolledOut,
  waitPodReady,
} from './harness/scenario.ts';

describe('Services, cluster DNS and the API server from inside a Pod', function () {
  this.timeout(240_000);
  const namespace = useNamespace('services');
  const greeting = randomBytes(8).toString('hex');

  before(async function () {
    this.timeout(240_000);
    const { kubectl } = cluster();
    const labels = { app: 'hello' };
    await kubectl.apply(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'hello', namespace: namespace.name },
        spec: {
          replicas: 2,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              terminationGracePeriodSeconds: 1,
              ...spreadOverZones(labels),
              containers: [
                {
                  ...clientContainer(
                    'web',
                    'echo "$GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www',
                  ),
                  env: [{ name: 'GREETING', value: greeting }],
                  readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'hello', namespace: namespace.name },
        spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] },
      },
      clientPod(namespace.name, 'client'),
    );
    await waitRolledOut(namespace.name, 'deployment/hello');
    await waitPodReady(namespace.name, 'client');
  });

  it("fetches from a Service by its cluster DNS name, through the Service's ClusterIP", async () => {
    const { kubectl } = cluster();
    const service = await kubectl.json<{ spec: { clusterIP: string } }>([
      'get',
      'service',
      'hello',
      '-n',
      namespace.name,
    ]);
    const prefix = SERVICE_CIDR.split('.').slice(0, 3).join('.');
    expect(service.spec.clusterIP.startsWith(`${prefix}.`)).to.be.true;
    for (const name of [`hello.${namespace.name}.svc.cluster.local`, 'hello']) {
      const output = await kubectl.exec(namespace.name, 'client', [
        'curl',
        '--silent',
        '--show-error',
        '--fail',
        '--max-time',
        '10',
        '--write-out',
        '%{remote_ip}',
        `http://${name}/`,
      ]);
      expect(output.split('\n'), name).to.deep.equal([greeting, service.spec.clusterIP]);
    }
  });

  it('reaches the API server through the kubernetes Service with its ServiceAccount token', async () => {
    const review = await cluster().kubectl.exec(namespace.name, 'client', [
      'sh',
      '-c',
      [
        'dir=/var/run/secrets/kubernetes.io/serviceaccount;',
        'curl --silent --show-error --fail --max-time 10 --cacert $dir/ca.crt',
        '-H "Authorization: Bearer $(cat $dir/token)" -H "Content-Type: application/json"',
        '-d \'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}\'',
        'https://kubernetes.default.svc/apis/authentication.k8s.io/v1/selfsubjectreviews',
      ].join(' '),
    ]);
    const parsed = JSON.parse(review) as { status: { userInfo: { username: string } } };
    expect(parsed.status.userInfo.username).to.equal(
      `system:serviceaccount:${namespace.name}:default`,
    );
  });
});
