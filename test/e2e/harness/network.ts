/**
 * The harness's network: a bridge for the host's services (API server, DNS, S3) and one per
 * Node, each with its own address in HARNESS_CIDR; forwarding on (cross-Node Pod traffic);
 * and the network rule, added before any Pod runs.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { run } from './commands.ts';
import { addNetworkRule } from './firewall.ts';
import { HOST_ADDRESS, HOST_BRIDGE, NODES } from './layout.ts';

/**
 * A bridge with a MAC address of its own. Left to the kernel, a bridge takes the lowest MAC
 * of its ports and changes it when ports come and go; when the port whose MAC it had goes
 * (a Pod's sandbox removed), every Pod on the bridge still sends to the old gateway MAC,
 * and their connections fail (EHOSTUNREACH after ARP's probes) until they resolve it again:
 * seen as clients refused seconds after unrelated Pods of their Node ended. A MAC set by
 * hand is kept.
 */
function addBridge(name: string, address: string, index: number): void {
  run('ip', ['link', 'add', name, 'type', 'bridge']);
  // Locally administered (02:…), one per bridge.
  const mac = `02:62:63:00:00:${index.toString(16).padStart(2, '0')}`;
  run('ip', ['link', 'set', 'dev', name, 'address', mac]);
  run('ip', ['address', 'add', `${address}/24`, 'dev', name]);
  run('ip', ['link', 'set', name, 'up']);
}

/**
 * The Node bridges exist before their kubelets start, because a kubelet's --node-ip must be
 * an address of the machine; the CNI bridge plugin then adopts them.
 */
export function setUpNetwork(): void {
  addNetworkRule();
  addBridge(HOST_BRIDGE, HOST_ADDRESS, 0);
  NODES.forEach((node, index) => addBridge(node.name, node.address, index + 1));
  // Previous values are in the snapshot; the teardown restores them.
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  // Replies between two Pods of one bridge must pass kube-proxy's NAT (Kubernetes requires it).
  const bridgeNetfilter = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  if (!existsSync(bridgeNetfilter)) {
    throw new Error('br_netfilter is not loaded (needed by kube-proxy): modprobe br_netfilter');
  }
  writeFileSync(bridgeNetfilter, '1');
}
