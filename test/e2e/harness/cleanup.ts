/**
 * Puts the machine back as the snapshot found it, whether the run ended well or crashed:
 * every step finds what the harness made by its marks (a command line under RUN_DIR, a
 * `bc-e2e` name, a KUBE-/CNI- chain absent from the snapshot) and touches nothing else.
 * Each step is best effort; the snapshot comparison afterwards is the judge.
 */
import {
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { attempt, run } from './commands.ts';
import { removeComponentChains, removeEmptyNftTables, removeNetworkRule } from './firewall.ts';
import { cgroupPids, harnessCgroups, removeCgroups } from './cgroups.ts';
import { K8S_BIN, PREFIX, RUN_DIR } from './layout.ts';
import { nfacctObjects, readSysctls, type MachineSnapshot } from './snapshot.ts';

/** Processes whose command line names the run folder: the harness's daemons and shims. */
export function pidsUnderRunDir(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(`${RUN_DIR}/`)) pids.push(Number(entry));
    } catch {
      // Exited meanwhile.
    }
  }
  return pids;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Exited meanwhile.
  }
}

/** Kills every process of the run: daemons by command line, containers by cgroup. */
async function killProcesses(): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const cgroups = harnessCgroups();
    for (const dir of cgroups) {
      // A frozen task never sees SIGKILL.
      try {
        if (existsSync(join(dir, 'freezer.state')))
          writeFileSync(join(dir, 'freezer.state'), 'THAWED');
      } catch {
        // Removed meanwhile.
      }
    }
    const pids = [...pidsUnderRunDir(), ...cgroups.flatMap(cgroupPids)];
    if (pids.length === 0) return;
    pids.forEach(kill);
    await sleep(200);
  }
  throw new Error(`Processes of the run survived SIGKILL: ${pidsUnderRunDir().join(', ')}`);
}

/** Unmounts everything at or under RUN_DIR, most recent mount first. */
async function unmountRunDir(): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .map((path) => path.replace(/\\040/g, ' '))
      .filter((path) => path === RUN_DIR || path.startsWith(`${RUN_DIR}/`));
    if (mounts.length === 0) return;
    for (const mount of mounts.reverse()) attempt('umount', [mount]);
    await sleep(100);
  }
  throw new Error('Mounts under the run folder could not be unmounted');
}

/** Veths on the harness's bridges (the CNI DEL removes them; a crash may not), then the bridges. */
function removeInterfaces(): void {
  const names = (args: string[]): string[] =>
    run('ip', ['-o', 'link', 'show', ...args])
      .split('\n')
      .map((line) => (line.split(': ')[1] ?? '').split('@')[0] ?? '')
      .filter((name) => name !== '');
  const bridges = names([]).filter((name) => name.startsWith(`${PREFIX}-`));
  for (const bridge of bridges) {
    for (const port of names(['master', bridge])) attempt('ip', ['link', 'delete', port]);
  }
  for (const bridge of bridges) attempt('ip', ['link', 'delete', bridge]);
}

/** Writes back every sysctl whose value differs from the snapshot (forwarding first). */
function restoreSysctls(before: MachineSnapshot): void {
  const now = readSysctls();
  const keys = Object.keys(before.sysctls).filter(
    (key) => now[key] !== undefined && now[key] !== before.sysctls[key],
  );
  // Writing ip_forward resets every interface's forwarding flag: do it before the others.
  keys.sort((a, b) => Number(b === 'net.ipv4.ip_forward') - Number(a === 'net.ipv4.ip_forward'));
  for (const key of keys) {
    attempt('sysctl', ['-w', `${key}=${before.sysctls[key]}`]);
  }
}

/**
 * kubelet and containerd write a few paths they are not told about (symlinks in
 * /var/log/containers, shim sockets under /run/containerd): remove those that did not exist
 * before, and symlinks into the run folder.
 */
function removeWellKnownPaths(before: MachineSnapshot): void {
  const existed = new Set(before.lines.path ?? []);
  if (existed.has('/var/log/containers')) {
    for (const entry of readdirSync('/var/log/containers')) {
      const path = join('/var/log/containers', entry);
      try {
        if (readlinkSync(path).startsWith(`${RUN_DIR}/`)) rmSync(path);
      } catch {
        // Not a symlink: not ours.
      }
    }
  }
  // containerd 1.6 puts every shim's socket in /run/containerd/s, whatever its state
  // folder; a killed shim leaves its socket. Only sockets nobody listens on are removed.
  const listening = new Set(
    readFileSync('/proc/net/unix', 'utf8')
      .split('\n')
      .map((line) => line.split(' ').pop()),
  );
  if (existsSync('/run/containerd/s')) {
    for (const entry of readdirSync('/run/containerd/s')) {
      const path = join('/run/containerd/s', entry);
      if (!existed.has(path) && !listening.has(path)) rmSync(path, { force: true });
    }
  }
  for (const path of [
    '/var/log/containers',
    '/var/log/pods',
    '/run/containerd',
    '/run/netns',
    '/var/lib/cni',
    '/etc/cni',
    '/opt/cni',
    '/opt/containerd',
    '/var/lib/containerd',
    '/var/lib/kubelet',
    '/etc/kubernetes',
  ]) {
    if (!existed.has(path) && existsSync(path)) rmSync(path, { recursive: true, force: true });
  }
}

/**
 * kube-proxy's nfacct counters, which `kube-proxy --cleanup` leaves behind; deletable only
 * once no rule refers to them.
 */
function removeProxyCounters(before: MachineSnapshot): void {
  const existed = new Set(before.lines['nfacct object'] ?? []);
  for (const name of nfacctObjects()) {
    if (PROXY_COUNTERS.includes(name) && !existed.has(name)) attempt('nfacct', ['del', name]);
  }
}

const PROXY_COUNTERS = ['ct_state_invalid_dropped_pkts', 'localhost_nps_accepted_pkts'];

/** The KUBE-/CNI- chains and nft tables that existed before, from the snapshot's lines. */
function keptFirewall(before: MachineSnapshot): { chains: Set<string>; tables: Set<string> } {
  const chains = new Set<string>();
  for (const [category, command] of [
    ['iptables rule', 'iptables'],
    ['ip6tables rule', 'ip6tables'],
  ] as const) {
    for (const line of before.lines[category] ?? []) {
      const match = /^(\S+) :(\S+) /.exec(line);
      if (match) chains.add(`${command} ${match[1]} ${match[2]}`);
    }
  }
  const tables = new Set(
    (before.lines['nftables line'] ?? [])
      .filter((line) => line.startsWith('table '))
      .map((line) => line.slice('table '.length)),
  );
  return { chains, tables };
}

/**
 * Removes everything of the run. Safe to call on a machine the run never touched, and
 * after a crash (from the snapshot the crashed run saved).
 */
export async function cleanUpMachine(before: MachineSnapshot): Promise<void> {
  const errors: unknown[] = [];
  const step = async (action: () => unknown): Promise<void> => {
    try {
      await action();
    } catch (error) {
      errors.push(error);
    }
  };
  await step(killProcesses);
  const kept = keptFirewall(before);
  if (!kept.chains.has('iptables nat KUBE-SERVICES') && existsSync(join(K8S_BIN, 'kube-proxy'))) {
    await step(() => attempt(join(K8S_BIN, 'kube-proxy'), ['--cleanup'], { timeoutMs: 60_000 }));
  }
  await step(() => removeComponentChains(kept.chains));
  await step(removeNetworkRule);
  await step(() => removeEmptyNftTables(kept.tables));
  await step(() => removeProxyCounters(before));
  await step(unmountRunDir);
  await step(removeCgroups);
  await step(removeInterfaces);
  await step(() => restoreSysctls(before));
  await step(() => removeWellKnownPaths(before));
  if (errors.length > 0) {
    throw new AggregateError(errors, `Cleanup failed: ${errors.map(String).join('; ')}`);
  }
}
