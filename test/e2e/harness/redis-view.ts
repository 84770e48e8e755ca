/**
 * What an operator of the platform checks of a BlobCache's Redis Cluster, from a client Pod
 * inside the cluster with redis-cli: `--cluster check`, `CLUSTER NODES`, and where each
 * node runs (its Pod, that Pod's Node and zone).
 */
import { inClient } from './client.ts';
import { cluster } from './cluster.ts';
import { ZONE_LABEL } from './scenario.ts';

/** A Redis pod's DNS name: <cache>-redis-<shard>-<ordinal>.<cache>-redis-<shard>.<namespace>.svc */
export function redisHost(namespace: string, cache: string, shard = 0, ordinal = 0): string {
  const service = `${cache}-redis-${shard}`;
  return `${service}-${ordinal}.${service}.${namespace}.svc`;
}

const CLI = 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD"';

export interface CheckResult {
  ok: boolean;
  output: string;
}

/** `redis-cli --cluster check` against one node; ok when it exits 0 and reports no error. */
export async function clusterCheck(
  namespace: string,
  pod: string,
  host: string,
): Promise<CheckResult> {
  const output = await inClient(
    namespace,
    pod,
    `${CLI} --cluster check ${host}:6379 2>&1; echo "exit=$?"`,
  );
  const ok =
    /exit=0\s*$/.test(output) &&
    output.includes('[OK] All nodes agree about slots configuration.') &&
    output.includes('[OK] All 16384 slots covered.') &&
    !/\[ERR\]|\[WARNING\]/.test(output);
  return { ok, output };
}

export interface ClusterNode {
  id: string;
  ip: string;
  flags: string[];
  /** The master's id, for a replica. */
  masterId: string | null;
  slots: string[];
}

export function parseClusterNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', address = '', flags = '', master = '-', , , , , ...slots] = line
        .trim()
        .split(' ');
      return {
        id,
        ip: address.split(':')[0]!,
        flags: flags.split(','),
        masterId: master === '-' ? null : master,
        slots,
      };
    });
}

export async function clusterNodes(
  namespace: string,
  pod: string,
  host: string,
): Promise<ClusterNode[]> {
  return parseClusterNodes(await inClient(namespace, pod, `${CLI} -h ${host} cluster nodes`));
}

interface PodList {
  items: { metadata: { name: string }; spec: { nodeName?: string }; status: { podIP?: string } }[];
}

/** Zone and Pod of every Redis Pod of `cache`, by Pod IP. */
export async function redisPlacement(
  namespace: string,
  cache: string,
): Promise<Map<string, { pod: string; zone: string }>> {
  const { kubectl } = cluster();
  const nodes = await kubectl.json<{
    items: { metadata: { name: string; labels?: Record<string, string> } }[];
  }>(['get', 'nodes']);
  const zoneOf = new Map(
    nodes.items.map((node) => [node.metadata.name, node.metadata.labels?.[ZONE_LABEL] ?? '']),
  );
  const pods = await kubectl.json<PodList>([
    'get',
    'pods',
    '-n',
    namespace,
    '-l',
    `app.kubernetes.io/instance=${cache},app.kubernetes.io/component=redis`,
  ]);
  return new Map(
    pods.items
      .filter((pod) => pod.status.podIP !== undefined)
      .map((pod) => [
        pod.status.podIP!,
        { pod: pod.metadata.name, zone: zoneOf.get(pod.spec.nodeName ?? '') ?? '' },
      ]),
  );
}

/**
 * Masters that share a zone with one of their replicas, as `master pod / replica pod (zone)`;
 * also names nodes whose zone is unknown (an IP no Redis Pod has).
 */
export function replicasInMasterZone(
  nodes: readonly ClusterNode[],
  placement: ReadonlyMap<string, { pod: string; zone: string }>,
): string[] {
  const problems: string[] = [];
  const byId = new Map(nodes.map((node) => [node.id, node]));
  for (const replica of nodes.filter((node) => node.flags.includes('slave'))) {
    const master = byId.get(replica.masterId ?? '');
    const at = placement.get(replica.ip);
    const masterAt = master === undefined ? undefined : placement.get(master.ip);
    if (at === undefined || masterAt === undefined) {
      problems.push(`replica ${replica.ip} or its master is no Redis Pod`);
    } else if (at.zone === masterAt.zone) {
      problems.push(`${masterAt.pod} / ${at.pod} (${at.zone})`);
    }
  }
  return problems;
}

/** Slots served by a master no node considers failing (`fail` or `fail?`). */
export function slotsServed(nodes: readonly ClusterNode[]): number {
  const served = new Set<number>();
  for (const node of nodes) {
    if (!node.flags.includes('master') || node.flags.some((flag) => flag.startsWith('fail')))
      continue;
    for (const range of node.slots) {
      // `[slot->-node]` entries are slots being moved, not served ranges.
      if (range.startsWith('[')) continue;
      const [from, to = from] = range.split('-').map(Number) as [number, number?];
      for (let slot = from; slot <= to; slot++) served.add(slot);
    }
  }
  return served.size;
}
