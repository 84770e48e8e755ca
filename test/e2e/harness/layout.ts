/**
 * Where everything of an end-to-end run lives: addresses, names, folders and binaries. All
 * the harness creates on the machine carries the `bc-e2e` prefix (interfaces, cgroup roots,
 * the iptables rule's comment) or lives under RUN_DIR, so a teardown, even after a crashed
 * run, removes exactly what the harness made.
 */
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const PREFIX = 'bc-e2e';

/**
 * Fixed rather than random so that the next run finds what a crashed run left (its
 * processes carry this path in their command lines, its mounts live under it).
 */
export const RUN_DIR = join(tmpdir(), PREFIX);
/** The machine as found before the first bring-up; outlives a crash (see cleanup.ts). */
export const SNAPSHOT_FILE = join(RUN_DIR, 'snapshot.json');
export const LOCK_FILE = join(RUN_DIR, 'owner.pid');
/** Component logs of the last run, copied out before the run folder goes. */
export const LOGS_DIR = join(tmpdir(), `${PREFIX}-logs`);

export const TESTENV_DIR =
  process.env.BLOBCACHE_TESTENV_DIR ?? join(homedir(), '.cache', 'blobcache', 'testenv');
export const K8S_VERSION = 'v1.34.4';
/** Same as COREDNS_VERSION in scripts/testenv/build-nodes.sh. */
export const COREDNS_VERSION = 'v1.13.2';
export const K8S_BIN = join(TESTENV_DIR, `k8s-${K8S_VERSION}`, 'bin');
export const COREDNS_BINARY = join(TESTENV_DIR, `coredns-${COREDNS_VERSION}`, 'bin', 'coredns');
export const CNI_BIN_DIR = '/usr/lib/cni';

/**
 * Every address the harness owns sits in HARNESS_CIDR, and only there: the host bridge
 * (API server, DNS, S3) and one Pod subnet per Node. The network rule drops forwarded
 * traffic from it to anything outside it. The Service range lies outside on purpose: a
 * ClusterIP that kube-proxy did not translate must be dropped, not routed off the machine.
 */
export const HARNESS_CIDR = '10.213.0.0/22';
export const HOST_BRIDGE = `${PREFIX}-host`;
export const HOST_ADDRESS = '10.213.0.1';
export const SERVICE_CIDR = '10.213.128.0/24';
/** The first address of SERVICE_CIDR, which the API server gives the `kubernetes` Service. */
export const KUBERNETES_SERVICE_IP = '10.213.128.1';
export const CLUSTER_DOMAIN = 'cluster.local';

export interface NodeSpec {
  /** Node name, bridge name and cgroup root at once. */
  name: string;
  zone: string;
  /** The bridge's own address: the Node's InternalIP and its Pods' gateway. */
  address: string;
  podCidr: string;
  dir: string;
}

export const NODES: readonly NodeSpec[] = ['a', 'b', 'c'].map((zone, index) => ({
  name: `${PREFIX}-${zone}`,
  zone,
  address: `10.213.${index + 1}.1`,
  podCidr: `10.213.${index + 1}.0/24`,
  dir: join(RUN_DIR, 'nodes', `${PREFIX}-${zone}`),
}));

/** cgroup v1 controllers the kubelet manages (it creates none of its root, see node.ts). */
export const CGROUP_CONTROLLERS = [
  'pids',
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'blkio',
  'systemd',
];
export const CGROUP_ROOT = '/sys/fs/cgroup';
