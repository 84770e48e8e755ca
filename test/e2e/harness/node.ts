/**
 * One Kubernetes Node: a kubelet with a containerd of its own, in its own folder, cgroup
 * root and bridge. Three of them share this machine's kernel (see README.md), so each gets
 * everything that would otherwise collide: containerd root, state, socket and runc root; CNI
 * configuration, bridge, subnet and IPAM data; kubelet root, certificates, ports, cgroup root
 * and Pod log folder (node-config.ts).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cgroupPids, harnessCgroups, makeCgroupRoot } from './cgroups.ts';
import { isRunning, killDaemon, startDaemon, stopDaemon } from './commands.ts';
import { K8S_BIN, type NodeSpec } from './layout.ts';
import { cniConfig, containerdConfig, kubeletConfig, type NodeOptions } from './node-config.ts';
import { writeKubeconfig } from './pki.ts';
import { eventually } from '../../harness/eventually.ts';

const execFileAsync = promisify(execFile);

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
   * The machine goes away: the kubelet and every container are killed (SIGKILL) and the Pod
   * network namespaces removed, so their addresses stop answering. `startKubelet` brings
   * the machine back, as after a reboot: the kubelet restarts the Pods still bound to it,
   * with their emptyDir volumes.
   */
  powerOff(): Promise<void>;
  /**
   * Stops everything of this Node: the kubelet, then every Pod sandbox (so the CNI plugin
   * removes its veths and addresses), then containerd.
   */
  stop(): Promise<void>;
}

/** SIGKILLs every process in a Node's cgroup root until none is left. */
async function killCgroup(root: string): Promise<void> {
  await eventually(`the processes of ${root} to die`, () => {
    const pids = harnessCgroups(root).flatMap(cgroupPids);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
    return Promise.resolve(pids.length === 0);
  });
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
    async powerOff() {
      if (kubelet !== undefined) await killDaemon(kubelet);
      await killCgroup(spec.name);
      // The shims lived in the Pods' cgroups too: until containerd has noticed each one
      // gone, removing its sandbox fails ("ttrpc: closed"). Removing a sandbox runs its
      // CNI DEL, which takes the Pod's address away.
      await eventually(
        `the Pod sandboxes of ${spec.name} to go`,
        async () => {
          await crictl('rmp', '--all', '--force').catch(() => undefined);
          return (await crictl('pods', '--quiet')).trim() === '';
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
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
