/**
 * A Node's configuration files as pure functions of its spec: containerd's config.toml, the
 * CNI network list and the KubeletConfiguration. What this machine needs beyond the
 * defaults: no CAP_SYS_RESOURCE (nothing may lower an oom_score_adj: containerd's
 * restrict_oom_score_adj, the kubelet's oomScoreAdj 0), cgroup v1 (failCgroupV1 false, the
 * cgroupfs driver, no systemd), no registry (images imported, see images.ts).
 */
import { join } from 'node:path';
import { CLUSTER_DOMAIN, CNI_BIN_DIR, HOST_ADDRESS, type NodeSpec } from './layout.ts';
import type { Pki } from './pki.ts';

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

export function containerdConfig(dir: string, sandboxImage: string): string {
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

export function cniConfig(spec: NodeSpec, dir: string): string {
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

export function kubeletConfig(options: NodeOptions, socket: string): object {
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
