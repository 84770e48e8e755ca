/**
 * Clusters described in a line per node, turned into what every pod would answer (its
 * CLUSTER NODES, INFO and DBSIZE), for the planner's unit tests.
 */
import type { ClusterNode, NodeInspection } from '../../../operator/src/redis/admin.ts';
import type { MembershipSpec, PodReport, RedisPod } from '../../../operator/src/redis/model.ts';

export interface FakeNode {
  /** Pod name `c-redis-<shard>-<ordinal>`; the id defaults to `<shard><ordinal>` padded. */
  shard: number;
  ordinal: number;
  id?: string;
  zone?: string;
  /** For a replica: the id of its master. */
  master?: string;
  slots?: [number, number][];
  keys?: number;
  linkUp?: boolean;
  offset?: number;
  migrating?: { slot: number; to: string }[];
  importing?: { slot: number; from: string }[];
  /** Not answering (the others still list it, unless `unknown`). */
  down?: boolean;
  /** Flags the others see on it, e.g. ['fail'], and when they last heard from it. */
  seenAs?: string[];
  pongMs?: number;
  /** Knows nobody and nobody knows it (a blank node). */
  blank?: boolean;
  terminating?: boolean;
  /** No IP yet. */
  pending?: boolean;
  /** Listed by the others but no pod any more (a node that died with its pod). */
  gone?: boolean;
}

export const idOf = (node: FakeNode) => node.id ?? `n${node.shard}${node.ordinal}`.padEnd(40, '0');
export const podName = (shard: number, ordinal: number) => `c-redis-${shard}-${ordinal}`;

export function podOf(node: FakeNode): RedisPod {
  return {
    name: podName(node.shard, node.ordinal),
    shard: node.shard,
    ordinal: node.ordinal,
    ...(node.pending === true ? {} : { ip: `10.0.${node.shard}.${node.ordinal + 1}` }),
    port: 6379,
    ...(node.zone === undefined ? {} : { zone: node.zone }),
    terminating: node.terminating === true,
  };
}

function line(node: FakeNode, myself: boolean): ClusterNode {
  const role = node.master === undefined ? 'master' : 'slave';
  const flags = myself ? ['myself', role] : [role, ...(node.seenAs ?? [])];
  return {
    id: idOf(node),
    address: `${podOf(node).ip ?? ''}:6379`,
    flags,
    masterId: node.master ?? null,
    pongReceivedMs: myself ? 0 : (node.pongMs ?? 1),
    configEpoch: 1,
    connected: !(node.down ?? false),
    slots: node.slots ?? [],
    migrating: myself ? (node.migrating ?? []) : [],
    importing: myself ? (node.importing ?? []) : [],
  };
}

function inspection(node: FakeNode, all: readonly FakeNode[]): NodeInspection {
  const visible = node.blank === true ? [node] : all.filter((other) => other.blank !== true);
  const replicas = all.filter((other) => other.master === idOf(node) && other.down !== true);
  return {
    nodes: visible.map((other) => line(other, other === node)),
    clusterOk: true,
    role: node.master === undefined ? 'master' : 'replica',
    masterLinkUp: node.master !== undefined && node.linkUp !== false,
    replicationOffset: node.offset ?? 100,
    replicas: replicas.map((replica) => ({
      address: `${podOf(replica).ip}:6379`,
      online: replica.linkUp !== false,
      offset: replica.offset ?? 100,
    })),
    keys: node.keys ?? 0,
    usedMemoryBytes: 0,
    maxMemoryBytes: 0,
  };
}

/** What every pod answers. */
export function reports(nodes: readonly FakeNode[]): PodReport[] {
  return nodes
    .filter((node) => node.gone !== true)
    .map((node) => ({
      pod: podOf(node),
      inspection: node.down === true || node.pending === true ? null : inspection(node, nodes),
    }));
}

export const spec = (
  shards: number,
  replicasPerShard = 1,
  resharding: MembershipSpec['resharding'] = 'Migrate',
): MembershipSpec => ({
  shards,
  replicasPerShard,
  resharding,
});

/** A healthy cluster: shards × (1 + replicas), masters at ordinal 0, slots even, zones a/b/c. */
export function healthy(shards: number, replicas = 1): FakeNode[] {
  const zones = ['a', 'b', 'c'];
  const nodes: FakeNode[] = [];
  const per = Math.floor(16_384 / shards);
  for (let shard = 0; shard < shards; shard++) {
    const first = shard * per + Math.min(shard, 16_384 % shards);
    const last = first + per - 1 + (shard < 16_384 % shards ? 1 : 0);
    const master: FakeNode = { shard, ordinal: 0, zone: zones[shard % 3]!, slots: [[first, last]] };
    nodes.push(master);
    for (let ordinal = 1; ordinal <= replicas; ordinal++)
      nodes.push({ shard, ordinal, zone: zones[(shard + ordinal) % 3]!, master: idOf(master) });
  }
  return nodes;
}
