/**
 * The cluster's control plane as real processes: etcd on loopback; kube-apiserver bound and
 * advertised on the host bridge, so Pods reach it through the `kubernetes` Service, with
 * ServiceAccount tokens, Node+RBAC authorization and NodeRestriction on, as in production;
 * kube-controller-manager (signing service-account tokens) and kube-scheduler.
 */
import { type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { isRunning, startDaemon, stopDaemon } from './commands.ts';
import { Kubectl } from './kubectl.ts';
import { HOST_ADDRESS, K8S_BIN, SERVICE_CIDR } from './layout.ts';
import { writeKubeconfig, type Pki } from './pki.ts';
import { eventually } from '../../harness/eventually.ts';

export interface ControlPlanePorts {
  etcdClient: number;
  etcdPeer: number;
  apiServer: number;
  controllerManager: number;
  scheduler: number;
}

export interface ControlPlane {
  /** https://<host bridge address>:<port> */
  server: string;
  adminKubeconfig: string;
  kubectl: Kubectl;
  /** Writes a kubeconfig for one of the PKI's client identities. */
  kubeconfigFor(identity: string): string;
  stop(): Promise<void>;
}

function daemon(dir: string, name: string, binary: string, args: string[]): ChildProcess {
  return startDaemon(binary, args, join(dir, `${name}.log`));
}

export async function startControlPlane(
  dir: string,
  pki: Pki,
  ports: ControlPlanePorts,
): Promise<ControlPlane> {
  const server = `https://${HOST_ADDRESS}:${ports.apiServer}`;
  const kubeconfigFor = (identity: string): string =>
    writeKubeconfig(join(dir, `${identity}.kubeconfig`), server, pki.ca, pki.clients[identity]!);
  const adminKubeconfig = kubeconfigFor('admin');
  const kubectl = new Kubectl(adminKubeconfig);
  const processes: ChildProcess[] = [];
  const etcdClient = `http://127.0.0.1:${ports.etcdClient}`;
  const etcdPeer = `http://127.0.0.1:${ports.etcdPeer}`;
  processes.push(
    daemon(dir, 'etcd', join(K8S_BIN, 'etcd'), [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdClient}`,
      `--advertise-client-urls=${etcdClient}`,
      `--listen-peer-urls=${etcdPeer}`,
      `--initial-advertise-peer-urls=${etcdPeer}`,
      `--initial-cluster=default=${etcdPeer}`,
      '--unsafe-no-fsync=true',
    ]),
  );
  const apiServer = daemon(dir, 'kube-apiserver', join(K8S_BIN, 'kube-apiserver'), [
    `--etcd-servers=${etcdClient}`,
    `--bind-address=${HOST_ADDRESS}`,
    `--advertise-address=${HOST_ADDRESS}`,
    `--secure-port=${ports.apiServer}`,
    `--tls-cert-file=${pki.serving.certificate}`,
    `--tls-private-key-file=${pki.serving.key}`,
    `--client-ca-file=${pki.ca}`,
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${pki.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    `--kubelet-client-certificate=${pki.clients['kubelet-client']!.certificate}`,
    `--kubelet-client-key=${pki.clients['kubelet-client']!.key}`,
    // Else `kubectl logs/exec` try to resolve the Node's name.
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    '--allow-privileged=true',
    `--cert-dir=${join(dir, 'apiserver-certs')}`,
  ]);
  processes.push(apiServer);
  await eventually(
    'kube-apiserver to be ready',
    async () => {
      if (!isRunning(apiServer)) throw new Error('kube-apiserver exited');
      return (await kubectl.run(['get', '--raw', '/readyz'], { timeoutMs: 10_000 })) === 'ok';
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  const controllerManagerConfig = kubeconfigFor('controller-manager');
  processes.push(
    daemon(dir, 'kube-controller-manager', join(K8S_BIN, 'kube-controller-manager'), [
      `--kubeconfig=${controllerManagerConfig}`,
      `--authentication-kubeconfig=${controllerManagerConfig}`,
      `--authorization-kubeconfig=${controllerManagerConfig}`,
      `--bind-address=${HOST_ADDRESS}`,
      `--secure-port=${ports.controllerManager}`,
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--root-ca-file=${pki.ca}`,
      '--use-service-account-credentials=true',
      '--leader-elect=false',
      // A lost Node is noticed in about 20 s rather than 50 (zone-loss scenarios).
      '--node-monitor-grace-period=20s',
    ]),
  );
  const schedulerConfig = kubeconfigFor('scheduler');
  processes.push(
    daemon(dir, 'kube-scheduler', join(K8S_BIN, 'kube-scheduler'), [
      `--kubeconfig=${schedulerConfig}`,
      `--authentication-kubeconfig=${schedulerConfig}`,
      `--authorization-kubeconfig=${schedulerConfig}`,
      `--bind-address=${HOST_ADDRESS}`,
      `--secure-port=${ports.scheduler}`,
      '--leader-elect=false',
    ]),
  );
  // The token controller is the controller-manager's: once the default ServiceAccount
  // exists, Pods can be admitted.
  await eventually(
    'the default ServiceAccount',
    async () => {
      await kubectl.run(['get', 'serviceaccount', 'default', '-n', 'default']);
      return true;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  return {
    server,
    adminKubeconfig,
    kubectl,
    kubeconfigFor,
    async stop() {
      for (const child of processes.reverse()) await stopDaemon(child);
    },
  };
}
