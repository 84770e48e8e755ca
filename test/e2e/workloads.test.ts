import { expect } from 'chai';
import { cluster } from './harness/cluster.ts';
import {
  clientContainer,
  spreadOverZones,
  useNamespace,
  waitRolledOut,
  zonesOf,
} from './harness/scenario.ts';

/** A web server of the client image, Ready once it answers on :8080. */
function webPodSpec(labels: Record<string, string>): Record<string, unknown> {
  return {
    terminationGracePeriodSeconds: 1,
    ...spreadOverZones(labels),
    containers: [
      {
        ...clientContainer(
          'web',
          'echo "$HOSTNAME" > /www/index.html && exec httpd -f -p 8080 -h /www',
        ),
        ports: [{ containerPort: 8080, name: 'http' }],
        readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
      },
    ],
  };
}

describe('Workloads over three zones', function () {
  this.timeout(240_000);
  const namespace = useNamespace('workloads');

  it('runs a Deployment with one Ready Pod in each zone', async () => {
    const { kubectl } = cluster();
    const labels = { app: 'web' };
    await kubectl.apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: namespace.name },
      spec: {
        replicas: 3,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: webPodSpec(labels) },
      },
    });
    await waitRolledOut(namespace.name, 'deployment/web');
    const deployment = await kubectl.json<{ status: { readyReplicas?: number } }>([
      'get',
      'deployment',
      'web',
      '-n',
      namespace.name,
    ]);
    expect(deployment.status.readyReplicas).to.equal(3);
    const zones = await zonesOf(namespace.name, 'app=web');
    expect([...zones.values()].sort()).to.deep.equal(['a', 'b', 'c']);
  });

  it('runs a StatefulSet behind a headless Service, one Ready Pod in each zone', async () => {
    const { kubectl } = cluster();
    const labels = { app: 'store' };
    await kubectl.apply(
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'store', namespace: namespace.name },
        spec: { clusterIP: 'None', selector: labels, ports: [{ name: 'http', port: 8080 }] },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'store', namespace: namespace.name },
        spec: {
          serviceName: 'store',
          replicas: 3,
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: webPodSpec(labels) },
        },
      },
    );
    await waitRolledOut(namespace.name, 'statefulset/store');
    const zones = await zonesOf(namespace.name, 'app=store');
    expect([...zones.keys()].sort()).to.deep.equal(['store-0', 'store-1', 'store-2']);
    expect([...zones.values()].sort()).to.deep.equal(['a', 'b', 'c']);
    // The headless Service lists each Pod as a ready endpoint.
    const slices = await kubectl.json<{
      items: { endpoints?: { conditions?: { ready?: boolean }; hostname?: string }[] }[];
    }>(['get', 'endpointslices', '-n', namespace.name, '-l', 'kubernetes.io/service-name=store']);
    const ready = slices.items
      .flatMap((slice) => slice.endpoints ?? [])
      .filter((endpoint) => endpoint.conditions?.ready === true)
      .map((endpoint) => endpoint.hostname)
      .sort();
    expect(ready).to.deep.equal(['store-0', 'store-1', 'store-2']);
  });
});
