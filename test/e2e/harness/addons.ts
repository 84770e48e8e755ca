/**
 * What runs on the host beside the control plane and serves every Node: one kube-proxy
 * (iptables mode), CoreDNS for the cluster domain, and versitygw as the S3 endpoint. The
 * last two listen on the host bridge, the only host address Pods reach; CoreDNS has no
 * forwarder, so every name outside the cluster domain is refused rather than looked up
 * off the machine.
 */
import { type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRunning, startDaemon, stopDaemon } from './commands.ts';
import type { ControlPlane } from './control-plane.ts';
import {
  CLUSTER_DOMAIN,
  COREDNS_BINARY,
  HARNESS_CIDR,
  HOST_ADDRESS,
  K8S_BIN,
  NODES,
} from './layout.ts';
import { eventually } from '../../harness/eventually.ts';
import { S3_ACCESS_KEY, S3_SECRET_KEY, startS3Server } from '../../harness/services.ts';

export interface Addon {
  stop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

async function waitHealthy(name: string, child: ChildProcess, url: string): Promise<void> {
  await eventually(
    `${name} at ${url}`,
    async () => {
      if (!isRunning(child)) throw new Error(`${name} exited`);
      return answers(url);
    },
    { timeoutMs: 60_000 },
  );
}

export async function startKubeProxy(
  dir: string,
  controlPlane: ControlPlane,
  ports: { healthz: number; metrics: number },
): Promise<Addon> {
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: controlPlane.kubeconfigFor('proxy') },
    mode: 'iptables',
    // One kube-proxy programs this one kernel for all three Nodes; it reads Node a.
    hostnameOverride: NODES[0]!.name,
    clusterCIDR: HARNESS_CIDR,
    detectLocalMode: 'ClusterCIDR',
    healthzBindAddress: `${HOST_ADDRESS}:${ports.healthz}`,
    metricsBindAddress: `${HOST_ADDRESS}:${ports.metrics}`,
    nodePortAddresses: [HARNESS_CIDR],
    // Localhost NodePorts would set net.ipv4.conf.all.route_localnet for the whole machine.
    iptables: { localhostNodePorts: false, minSyncPeriod: '1s', syncPeriod: '30s' },
    // Zero leaves the machine's conntrack table size and timeouts alone.
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: '0s',
      tcpCloseWaitTimeout: '0s',
    },
  };
  const file = join(dir, 'kube-proxy.json');
  writeFileSync(file, JSON.stringify(config));
  const child = startDaemon(
    join(K8S_BIN, 'kube-proxy'),
    [`--config=${file}`],
    join(dir, 'kube-proxy.log'),
  );
  await waitHealthy('kube-proxy', child, `http://${HOST_ADDRESS}:${ports.healthz}/healthz`);
  return { stop: () => stopDaemon(child) };
}

/** What CoreDNS's kubernetes plugin reads, granted to its own identity (pki.ts). */
const DNS_RBAC = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'bc-e2e:coredns' },
    rules: [
      { apiGroups: [''], resources: ['services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
      {
        apiGroups: ['discovery.k8s.io'],
        resources: ['endpointslices'],
        verbs: ['list', 'watch'],
      },
    ],
  },
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'bc-e2e:coredns' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bc-e2e:coredns' },
    subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'bc-e2e:coredns' }],
  },
];

export async function startDns(
  dir: string,
  controlPlane: ControlPlane,
  ports: { health: number; ready: number },
): Promise<Addon> {
  await controlPlane.kubectl.apply(...DNS_RBAC);
  const corefile = join(dir, 'Corefile');
  writeFileSync(
    corefile,
    `${CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${HOST_ADDRESS}
    errors
    health ${HOST_ADDRESS}:${ports.health}
    ready ${HOST_ADDRESS}:${ports.ready}
    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
        kubeconfig ${controlPlane.kubeconfigFor('dns')} e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
    loadbalance
}
`,
  );
  const child = startDaemon(COREDNS_BINARY, ['-conf', corefile], join(dir, 'coredns.log'));
  // /ready answers 200 once the kubernetes plugin has synced with the API server.
  await waitHealthy('CoreDNS', child, `http://${HOST_ADDRESS}:${ports.ready}/ready`);
  return { stop: () => stopDaemon(child) };
}

export interface S3Endpoint extends Addon {
  /** http://<host bridge address>:<port>, reachable from Pods and from the tests. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server: its address refuses connections, as an S3 outage looks to clients. */
  pause(): Promise<void>;
  /** Starts it again on the same address, with the same objects. */
  resume(): Promise<void>;
}

export async function startS3(dir: string, port: number): Promise<S3Endpoint> {
  const server = await startS3Server({ dir, port, host: HOST_ADDRESS });
  return {
    endpoint: server.endpoint,
    accessKeyId: S3_ACCESS_KEY,
    secretAccessKey: S3_SECRET_KEY,
    stop: () => server.stop(),
    pause: () => server.stop(),
    resume: () => server.start(),
  };
}
