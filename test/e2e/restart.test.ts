import { expect } from 'chai';
import { cluster } from './harness/cluster.ts';
import { clientContainer, useNamespace, waitPodReady } from './harness/scenario.ts';

interface PodStatus {
  metadata: { uid: string };
  spec: { nodeName: string };
  status: {
    containerStatuses: {
      containerID: string;
      restartCount: number;
      ready: boolean;
      lastState: { terminated?: { exitCode: number } };
    }[];
  };
}

describe('A killed container', function () {
  this.timeout(180_000);
  const namespace = useNamespace('restart');

  it('is restarted in place by its kubelet: same Pod, same Node, same volumes', async () => {
    const { kubectl, nodes } = cluster();
    await kubectl.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'keeper', namespace: namespace.name },
      spec: {
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 'data', emptyDir: {} }],
        containers: [
          {
            ...clientContainer(
              'web',
              'echo started >> /data/starts && exec httpd -f -p 8080 -h /www',
            ),
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
            readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
          },
        ],
      },
    });
    await waitPodReady(namespace.name, 'keeper');
    const before = await kubectl.json<PodStatus>(['get', 'pod', 'keeper', '-n', namespace.name]);
    const container = before.status.containerStatuses[0]!;
    expect(container.restartCount).to.equal(0);

    // SIGKILL the container's process from the machine, as an OOM kill or a crash would.
    const node = nodes.find((candidate) => candidate.spec.name === before.spec.nodeName)!;
    const id = container.containerID.replace('containerd://', '');
    const inspected = JSON.parse(await node.crictl('inspect', id)) as { info: { pid: number } };
    process.kill(inspected.info.pid, 'SIGKILL');

    await kubectl.run(
      [
        'wait',
        '--for=jsonpath={.status.containerStatuses[0].restartCount}=1',
        'pod/keeper',
        '-n',
        namespace.name,
        '--timeout=120s',
      ],
      { timeoutMs: 130_000 },
    );
    await waitPodReady(namespace.name, 'keeper');
    const after = await kubectl.json<PodStatus>(['get', 'pod', 'keeper', '-n', namespace.name]);
    const restarted = after.status.containerStatuses[0]!;
    expect(after.metadata.uid).to.equal(before.metadata.uid);
    expect(after.spec.nodeName).to.equal(before.spec.nodeName);
    expect(restarted.containerID).to.not.equal(container.containerID);
    expect(restarted.lastState.terminated?.exitCode).to.equal(137);
    expect(restarted.ready).to.be.true;
    // The emptyDir outlived the container: both starts wrote to the same file.
    const starts = await kubectl.exec(namespace.name, 'keeper', ['cat', '/data/starts']);
    expect(starts.trim().split('\n')).to.deep.equal(['started', 'started']);
  });
});
