import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { eventually } from '../harness/eventually.ts';
import type { ControlPlane } from '../harness/control-plane.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import {
  createBlobCache,
  freshNamespace,
  objectExists,
  startControlPlaneWithCrd,
} from '../harness/kube.ts';
import { freePorts } from '../harness/services.ts';

interface OperatorProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

describe('the operator as a process (npm run operator)', function () {
  this.timeout(180_000);
  let plane: ControlPlane;
  let config: KubeConfig;
  let namespace: string;
  const running: OperatorProcess[] = [];

  before(async function () {
    this.timeout(600_000);
    ({ plane, config } = await startControlPlaneWithCrd());
    namespace = await freshNamespace(config, 'op');
  });
  after(async () => {
    for (const operator of running) operator.child.kill('SIGKILL');
    await plane?.stop();
  });

  const startOperator = async (name: string): Promise<OperatorProcess> => {
    const port = await freePorts(1);
    const child = spawn(process.execPath, ['operator/src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        KUBECONFIG: plane.kubeconfigPath,
        OPERATOR_NAMESPACE: namespace,
        POD_NAME: name,
        OPERATOR_METRICS_PORT: String(port),
        OPERATOR_LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    const operator = {
      child,
      port,
      exited: new Promise<number | null>((resolve) => child.once('exit', resolve)),
    };
    running.push(operator);
    await eventually(
      `operator ${name} to serve /healthz`,
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
    );
    return operator;
  };
  const holder = async (): Promise<string | undefined> =>
    (
      await config
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ name: 'blobcache-operator', namespace })
    ).spec?.holderIdentity;
  const deploymentExists = (name: string) =>
    objectExists(config, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: `${name}-http`,
      namespace,
    });
  const createCache = (name: string) => createBlobCache(config, namespace, name);

  it('refuses a bad setting at start, naming it', async () => {
    const child = spawn(process.execPath, ['operator/src/main.ts'], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        KUBECONFIG: plane.kubeconfigPath,
        OPERATOR_RENEW_DEADLINE_MS: '20000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).to.equal(1);
    expect(stderr).to.match(
      /OPERATOR_RENEW_DEADLINE_MS \(20000\) must be less than OPERATOR_LEASE_DURATION_SECONDS/,
    );
  });

  it('reconciles as the leader, serves metrics, and hands over to a standby on SIGTERM', async () => {
    const first = await startOperator('first');
    await eventually('the first operator to lead', async () => (await holder()) === 'first');
    const second = await startOperator('second');
    await createCache('one');
    await eventually('the first BlobCache to be reconciled', () => deploymentExists('one'));
    // The Deployment appears mid-reconcile; the counter moves when the reconcile ends.
    await eventually("a successful reconcile in the leader's metrics", async () =>
      /blobcache_operator_reconciles_total\{result="success"\} [1-9]/.test(
        await (await fetch(`http://127.0.0.1:${first.port}/metrics`)).text(),
      ),
    );
    expect(await holder()).to.equal('first');
    first.child.kill('SIGTERM');
    expect(await first.exited).to.equal(0);
    await eventually('the standby to take the Lease', async () => (await holder()) === 'second');
    await createCache('two');
    await eventually('the second BlobCache to be reconciled by the new leader', () =>
      deploymentExists('two'),
    );
    second.child.kill('SIGTERM');
    expect(await second.exited).to.equal(0);
  });
});
