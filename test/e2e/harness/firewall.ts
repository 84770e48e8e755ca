/**
 * The harness's one iptables rule (the workplace's network rule), and the removal of what
 * kubelet, kube-proxy and the CNI plugins leave in iptables. Rules are deleted one by one
 * (`-D` with the exact spec `-S` printed), chains only when the harness's components made
 * them: a table is never flushed.
 */
import { attempt, run } from './commands.ts';
import { HARNESS_CIDR, PREFIX } from './layout.ts';

const RULE_COMMENT = `${PREFIX}-network-rule`;

/**
 * Dropped in mangle FORWARD: it runs before filter FORWARD, where kube-proxy inserts its own
 * ACCEPT rules, and after the nat PREROUTING translation of ClusterIPs, so a Service's
 * backends are judged by their real address.
 */
const RULE = [
  '-s',
  HARNESS_CIDR,
  '!',
  '-d',
  HARNESS_CIDR,
  '-m',
  'comment',
  '--comment',
  RULE_COMMENT,
  '-j',
  'DROP',
];

export function addNetworkRule(): void {
  if (attempt('iptables', ['-t', 'mangle', '-C', 'FORWARD', ...RULE]).status === 0) return;
  run('iptables', ['-t', 'mangle', '-I', 'FORWARD', '1', ...RULE]);
}

export function removeNetworkRule(): void {
  while (attempt('iptables', ['-t', 'mangle', '-C', 'FORWARD', ...RULE]).status === 0) {
    run('iptables', ['-t', 'mangle', '-D', 'FORWARD', ...RULE]);
  }
}

/** Packets the network rule has dropped so far; null when the rule is not installed. */
export function networkRuleDrops(): number | null {
  for (const line of run('iptables-save', ['-c', '-t', 'mangle']).split('\n')) {
    const match = /^\[(\d+):\d+\] -A FORWARD .*--comment (\S+)/.exec(line);
    if (match?.[2] === RULE_COMMENT) return Number(match[1]);
  }
  return null;
}

/** Splits an `iptables -S` line the way iptables-save quotes it. */
export function splitRule(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const match of line.matchAll(pattern)) {
    words.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? ''));
  }
  return words;
}

/** Chains of a table as `-S` lists them: `-N NAME` lines. */
function chainsOf(command: string, table: string): string[] {
  return attempt(command, ['-t', table, '-S'])
    .stdout.split('\n')
    .filter((line) => line.startsWith('-N '))
    .map((line) => line.slice(3).trim());
}

/**
 * Deletes every rule that jumps to, or lives in, a chain named KUBE-* or CNI-* which did
 * not exist in `keep`, then those chains. What is left is checked by the snapshot.
 */
export function removeComponentChains(keep: ReadonlySet<string>): void {
  const ours = (chain: string): boolean => /^(KUBE|CNI)-/.test(chain);
  for (const command of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      const chains = chainsOf(command, table).filter(
        (chain) => ours(chain) && !keep.has(`${command} ${table} ${chain}`),
      );
      if (chains.length === 0) continue;
      const doomed = new Set(chains);
      for (const line of attempt(command, ['-t', table, '-S']).stdout.split('\n')) {
        const words = splitRule(line);
        if (words[0] !== '-A') continue;
        const jumpAt = words.findIndex((word) => word === '-j' || word === '-g');
        const jump = jumpAt < 0 ? '' : (words[jumpAt + 1] ?? '');
        if (doomed.has(words[1] ?? '') || doomed.has(jump)) {
          attempt(command, ['-t', table, '-D', ...words.slice(1)]);
        }
      }
      for (const chain of chains) attempt(command, ['-t', table, '-X', chain]);
    }
  }
}

/**
 * With the nf_tables backend, iptables creates a table (with its base chains) on first use
 * and never deletes it. Deletes tables that did not exist in `keep` and hold no rule.
 */
export function removeEmptyNftTables(keep: ReadonlySet<string>): void {
  const listed = attempt('nft', ['list', 'tables']);
  if (listed.status !== 0) return;
  for (const line of listed.stdout.split('\n')) {
    const table = line.replace(/^table /, '').trim();
    if (table === '' || keep.has(table)) continue;
    const [family = '', name = ''] = table.split(' ');
    const body = attempt('nft', ['list', 'table', family, name]).stdout;
    const hasRules = body
      .split('\n')
      .map((text) => text.trim())
      .some((text) => text !== '' && !/^(table|chain|type|policy|\}|flags)/.test(text));
    if (!hasRules) attempt('nft', ['delete', 'table', family, name]);
  }
}
