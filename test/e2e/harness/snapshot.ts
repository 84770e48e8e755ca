/**
 * What a run may change on the machine, captured as plain lines so that before and after
 * compare with a set difference: sysctls, iptables and nftables rules, nfacct objects, mounts, network
 * interfaces, addresses and routes, cgroup folders, and the well-known paths the node
 * components write to when not told otherwise.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { attempt, run } from './commands.ts';
import { CGROUP_ROOT } from './layout.ts';

export interface MachineSnapshot {
  sysctls: Record<string, string>;
  /** Category name → sorted lines. */
  lines: Record<string, string[]>;
}

/** Counters and identifiers the kernel changes on its own, whatever a run does. */
const VOLATILE_SYSCTLS = [
  /^fs\.(aio-nr|dentry-state|file-nr|inode-nr|inode-state)$/,
  /^fs\.quota\./,
  /^kernel\.(ns_last_pid|pty\.nr|hung_task_detect_count)$/,
  /^kernel\.random\.(entropy_avail|uuid)$/,
  /^net\.netfilter\.nf_conntrack_count$/,
];

/** Where kubelet, containerd and the CNI plugins write by default. */
const WELL_KNOWN_PATHS = [
  '/etc/cni',
  '/etc/kubernetes',
  '/opt/cni',
  '/opt/containerd',
  '/run/containerd',
  '/run/netns',
  '/var/lib/cni',
  '/var/lib/containerd',
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
];

/** Folders whose entries are listed too: shim sockets, network namespaces, log links, IPAM. */
const LISTED_FOLDERS = [
  '/run/containerd/s',
  '/run/netns',
  '/var/lib/cni/networks',
  '/var/log/containers',
  '/var/log/pods',
];

function pathLines(): string[] {
  return [
    ...WELL_KNOWN_PATHS.filter((path) => existsSync(path)),
    ...LISTED_FOLDERS.filter((dir) => existsSync(dir)).flatMap((dir) =>
      readdirSync(dir).map((entry) => join(dir, entry)),
    ),
  ];
}

export function readSysctls(): Record<string, string> {
  const values: Record<string, string> = {};
  // `sysctl -a` reports unreadable keys on stderr and still exits 0 or 255.
  for (const line of attempt('sysctl', ['-a']).stdout.split('\n')) {
    const separator = line.indexOf(' = ');
    if (separator < 0) continue;
    const key = line.slice(0, separator);
    if (VOLATILE_SYSCTLS.some((pattern) => pattern.test(key))) continue;
    values[key] = line.slice(separator + 3);
  }
  return values;
}

/** iptables-save output without counters and comments, each line prefixed by its table. */
function firewallLines(save: string): string[] {
  const lines: string[] = [];
  let table = '';
  for (const line of attempt(save, []).stdout.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':')) lines.push(`${table} ${line.replace(/ \[\d+:\d+\]$/, '')}`);
    else if (line.startsWith('-')) lines.push(`${table} ${line}`);
  }
  return lines;
}

/** `nft list ruleset`, one line per statement prefixed by its table and chain, no counters. */
function nftablesLines(): string[] {
  const result = attempt('nft', ['list', 'ruleset']);
  if (result.status !== 0) return [];
  const lines: string[] = [];
  let table = '';
  let chain = '';
  for (const raw of result.stdout.split('\n')) {
    const line = raw.trim().replace(/counter packets \d+ bytes \d+/, 'counter');
    if (line === '' || line === '}') continue;
    if (line.startsWith('table ')) {
      table = line.replace(/ \{$/, '');
      chain = '';
      lines.push(table);
    } else if (/^(chain|set|map) /.test(line)) {
      chain = line.replace(/ \{$/, '');
      lines.push(`${table}: ${chain}`);
    } else {
      lines.push(`${table}: ${chain}: ${line}`);
    }
  }
  return lines;
}

/** Names of nfacct objects (kube-proxy counts dropped packets in two of them). */
export function nfacctObjects(): string[] {
  return attempt('nfacct', ['list'])
    .stdout.split('\n')
    .map((line) => /= (\S+);$/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

function mountLines(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [before, after = ''] = line.split(' - ');
      const mountPoint = before?.split(' ')[4] ?? '';
      const [type = '', source = ''] = after.split(' ');
      return `${mountPoint} ${type} ${source}`;
    });
}

function interfaceLines(): string[] {
  return run('ip', ['-o', 'link', 'show'])
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (line.split(': ')[1] ?? '').split('@')[0] ?? '');
}

function addressLines(): string[] {
  return run('ip', ['-o', 'address', 'show'])
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split(/\s+/).slice(1, 4).join(' '));
}

function routeLines(): string[] {
  return [
    ...run('ip', ['-4', 'route', 'show', 'table', 'all']).split('\n'),
    ...run('ip', ['-6', 'route', 'show', 'table', 'all']).split('\n'),
  ].filter((line) => line.trim() !== '');
}

/**
 * The folders under which whoever started this process makes a cgroup per process it runs
 * (the parent of this process's own cgroup, where that is not a controller's root). Their
 * children come and go with other processes on the machine, whatever a run does.
 */
function siblingCgroupParents(): Set<string> {
  const parents = new Set<string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === undefined || path === undefined || path === '/') continue;
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (parent === '') continue;
    for (const controller of controllers.replace(/^name=/, '').split(',')) {
      if (controller !== '') parents.add(join(CGROUP_ROOT, controller, parent));
    }
  }
  return parents;
}

/** Whether a cgroup folder is another process's, made and removed by whoever runs it. */
function isSiblingCgroup(path: string, parents: Set<string>): boolean {
  return parents.has(path.slice(0, path.lastIndexOf('/')));
}

function cgroupFolders(): string[] {
  const parents = siblingCgroupParents();
  const folders: string[] = [];
  const walk = (dir: string): void => {
    if (parents.has(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      folders.push(path);
      walk(path);
    }
  };
  walk(CGROUP_ROOT);
  return folders;
}

export function takeSnapshot(): MachineSnapshot {
  const lines: Record<string, string[]> = {
    'iptables rule': firewallLines('iptables-save'),
    'ip6tables rule': firewallLines('ip6tables-save'),
    'nftables line': nftablesLines(),
    'nfacct object': nfacctObjects(),
    mount: mountLines(),
    'network interface': interfaceLines(),
    address: addressLines(),
    route: routeLines(),
    'cgroup folder': cgroupFolders(),
    path: pathLines(),
  };
  for (const category of Object.values(lines)) category.sort();
  return { sysctls: readSysctls(), lines };
}

/**
 * What a benchmark run (`npm run bench`) makes and removes on its own while it runs, perhaps
 * beside an end-to-end run: its modelled S3 link's TUN devices (`bcb<pid>h`, `bcb<pid>n`),
 * their addresses and routes in 10.215.0.0/16, and its `bcbench-<pid>` network namespace
 * (a file and a mount under /run/netns). See docs/decisions/0070.
 */
const BENCHMARK_LINK = /\bbcb\d+[hn]\b|\b10\.215\.|\bbcbench-\d+\b/;

/** Human-readable differences from `before` to `after`; empty when the machine is as found. */
export function differences(before: MachineSnapshot, after: MachineSnapshot): string[] {
  const found: string[] = [];
  const parents = siblingCgroupParents();
  // A snapshot taken before sibling cgroups were skipped still lists them.
  const relevant = (category: string, lines: string[] | undefined): string[] =>
    (lines ?? []).filter(
      (line) =>
        (category !== 'cgroup folder' || !isSiblingCgroup(line, parents)) &&
        !BENCHMARK_LINK.test(line),
    );
  for (const category of new Set([...Object.keys(before.lines), ...Object.keys(after.lines)])) {
    const was = new Set(relevant(category, before.lines[category]));
    const is = new Set(relevant(category, after.lines[category]));
    for (const line of is) if (!was.has(line)) found.push(`${category} added: ${line}`);
    for (const line of was) if (!is.has(line)) found.push(`${category} removed: ${line}`);
  }
  // An interface that came or went brings or takes its own sysctls: reported once, above.
  const interfacesBefore = new Set(before.lines['network interface'] ?? []);
  const interfacesAfter = new Set(after.lines['network interface'] ?? []);
  const cameOrWent = [
    ...[...interfacesAfter].filter((name) => !interfacesBefore.has(name)),
    ...[...interfacesBefore].filter((name) => !interfacesAfter.has(name)),
  ];
  const ofInterface = (key: string): boolean =>
    cameOrWent.some((name) => key.includes(`.${name}.`));
  for (const key of new Set([...Object.keys(before.sysctls), ...Object.keys(after.sysctls)])) {
    const was = before.sysctls[key];
    const is = after.sysctls[key];
    if (was === is) continue;
    if (was === undefined) {
      if (!ofInterface(key)) found.push(`sysctl ${key} appeared (${is})`);
    } else if (is === undefined) {
      if (!ofInterface(key)) found.push(`sysctl ${key} disappeared (was ${was})`);
    } else found.push(`sysctl ${key} is ${is}, was ${was}`);
  }
  return found;
}
