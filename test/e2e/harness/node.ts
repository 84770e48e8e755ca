/**
 * One Kubernetes Node: a kubelet with a containerd of its own, in its own folder, cgroup
 * root and bridge. Three of them share this machine's kernel (see README.md), so each gets
 * everything that would otherwise collide: containerd root, state, socket and runc root; CNI
 * configuration, bridge, subnet and IPAM data; kubelet root, certificates, ports, cgroup root
 * and Pod log folder. The settings come from REAL-NODES measurements: no CAP_SYS_RESOURCE
 * here (restrict_oom_score_adj, oomScoreAdj 0), cgroup v1 (failCgroupV1 false), no
 * registry (images imported, see images.ts).
 */
import { type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isRunning, startDaemon, stopDaemon } from './commands.ts';
import {
  CGROUP_CONTROLLERS,
  CGROUP_ROOT,
  CLUSTER_DOMAIN,
  CNI_BIN_DIR,
  HOST_ADDRESS,
  K8S_BIN,
  type NodeSpec,
} from './layout.ts';
import { writeKubeconfig, type Pki } from './pki.ts';
import { eventually } from '../../harness/eventually.ts';

const execFileAsync = promisify(execFile);

export interface NodeOptions {
  spec: NodeSpec;
  pki: Pki;
  apiServer: string;
  sandboxImage: string;
  /** A resolv.conf naming only the cluster's DNS server, for Pods with dnsPolicy Default. */
  resolvConf: string;
  kubeletPort: number;
  healthzPort: number;
}

export interface KubeNode {
  spec: NodeSpec;
  /** unix:// endpoint of this Node's containerd (CRI). */
  endpoint: string;
  /** Runs crictl against this Node's containerd. */
  crictl(...args: string[]): Promise<string>;
  /** Runs ctr (containerd's own client) in the k8s.io namespace of this Node. */
  ctr(...args: string[]): Promise<string>;
  startKubelet(): void;
  /** Stops the kubelet only; containers keep running, as when a kubelet dies. */
  stopKubelet(): Promise<void>;
  /**
   * Stops everything of this Node: the kubelet, then every Pod sandbox (so the CNI plugin
   * removes its veths and addresses), then containerd.
   */
  stop(): Promise<void>;
}

/** The kubelet creates none of its cgroup root; it must exist in every v1 controller. */
function makeCgroupRoot(name: string): void {
  for (const controller of CGROUP_CONTROLLERS) {
    const dir = join(CGROUP_ROOT, controller, name);
    mkdirSync(dir, { recursive: true });
    if (controller === 'cpuset') {
      // A new cpuset starts empty, and no task may join an empty cpuset.
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        copyFileSync(join(CGROUP_ROOT, controller, file), join(dir, file));
      }
    }
  }
}

function containerdConfig(dir: string, sandboxImage: string): string {
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"

[grpc]
  address = "${dir}/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  # Without CAP_SYS_RESOURCE no process may lower an oom_score_adj below its own.
  restrict_oom_score_adj = true
  # Else containerd turns /run/netns into a shared mount.
  netns_mounts_under_state_dir = true

  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "${dir}/containerd/runc"
      SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${dir}/cni/net.d"
`;
}

function cniConfig(spec: NodeSpec, dir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: spec.name,
    plugins: [
      {
        type: 'bridge',
        bridge: spec.name,
        isGateway: true,
        hairpinMode: true,
        // Pods keep their own addresses: nothing they send is rewritten to leave the machine.
        ipMasq: false,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: spec.podCidr, gateway: spec.address }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: join(dir, 'cni', 'ipam'),
        },
      },
    ],
  });
}

function kubeletConfig(options: NodeOptions, socket: string): object {
  const { spec, pki } = options;
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: spec.address,
    port: options.kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: spec.address,
    healthzPort: options.healthzPort,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: pki.ca },
    },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${socket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${spec.name}`,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: ['pods'],
    failSwapOn: false,
    failCgroupV1: false,
    oomScoreAdj: 0,
    clusterDNS: [HOST_ADDRESS],
    clusterDomain: CLUSTER_DOMAIN,
    resolvConf: options.resolvConf,
    // A shared /var/log/pods would let one kubelet's log cleanup delete another's logs.
    podLogsDir: join(spec.dir, 'pod-logs'),
    // No registry to pull a collected image back from.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1%',
      'imagefs.available': '1%',
      'nodefs.inodesFree': '1%',
    },
    serializeImagePulls: false,
  };
}

export async function startNode(options: NodeOptions): Promise<KubeNode> {
  const { spec, pki } = options;
  const dir = spec.dir;
  for (const sub of ['containerd', 'cni/net.d', 'cni/ipam', 'kubelet', 'pki', 'pod-logs']) {
    mkdirSync(join(dir, sub), { recursive: true });
  }
  makeCgroupRoot(spec.name);
  const socket = join(dir, 'containerd.sock');
  const endpoint = `unix://${socket}`;
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, options.sandboxImage));
  writeFileSync(join(dir, 'cni', 'net.d', '10-bridge.conflist'), cniConfig(spec, dir));
  writeFileSync(join(dir, 'kubelet.json'), JSON.stringify(kubeletConfig(options, socket)));
  const kubeconfig = writeKubeconfig(
    join(dir, 'kubelet.kubeconfig'),
    options.apiServer,
    pki.ca,
    pki.clients[spec.name]!,
  );
  const tool = async (command: string, args: string[]): Promise<string> =>
    (await execFileAsync(command, args, { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })).stdout;
  const crictl = (...args: string[]): Promise<string> =>
    tool(join(K8S_BIN, 'crictl'), ['--runtime-endpoint', endpoint, '--timeout', '30s', ...args]);
  const ctr = (...args: string[]): Promise<string> =>
    tool('ctr', ['--address', socket, '--namespace', 'k8s.io', ...args]);

  const containerd = startDaemon(
    'containerd',
    ['--config', join(dir, 'containerd.toml')],
    join(dir, 'containerd.log'),
  );
  await eventually(`containerd of ${spec.name}`, async () => {
    if (!isRunning(containerd)) throw new Error('containerd exited');
    await ctr('version');
    return true;
  });

  let kubelet: ChildProcess | undefined;
  const node: KubeNode = {
    spec,
    endpoint,
    crictl,
    ctr,
    startKubelet() {
      if (kubelet !== undefined && isRunning(kubelet)) return;
      kubelet = startDaemon(
        join(K8S_BIN, 'kubelet'),
        [
          `--config=${join(dir, 'kubelet.json')}`,
          `--kubeconfig=${kubeconfig}`,
          `--root-dir=${join(dir, 'kubelet')}`,
          `--cert-dir=${join(dir, 'pki')}`,
          `--hostname-override=${spec.name}`,
          `--node-ip=${spec.address}`,
          `--node-labels=topology.kubernetes.io/zone=${spec.zone}`,
        ],
        join(dir, 'kubelet.log'),
      );
    },
    async stopKubelet() {
      if (kubelet !== undefined) await stopDaemon(kubelet);
    },
    async stop() {
      await node.stopKubelet();
      // Stopping and removing the sandboxes runs the CNI DEL of each: veths and IPs go.
      await crictl('rmp', '--all', '--force').catch(() => undefined);
      await stopDaemon(containerd);
    },
  };
  return node;
}
