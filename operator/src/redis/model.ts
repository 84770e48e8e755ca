/**
 * The cluster as the planner sees it: every Redis pod of a BlobCache, what each one that
 * answered says about itself and the others, and the facts derived from that (members,
 * blank nodes, strangers, slot ownership, open slots, stability). Pure.
 */
import { slotCount, type ClusterNode, type NodeInspection } from './admin.ts';

export const SLOTS = 16_384;

/** A Redis pod as the planner needs it (from the Kubernetes API, or a test's records). */
export interface RedisPod {
  name: string;
  /** The shard its StatefulSet belongs to (label blobcache.io/shard). */
  shard: number;
  /** Its ordinal in the StatefulSet. */
  ordinal: number;
  /** The pod's IP; unset until it has one. */
  ip?: string;
  port: number;
  /** The zone of the node it runs on (unset: not scheduled, or the node has no zone label). */
  zone?: string;
  /** Being deleted. */
  terminating: boolean;
}

export type Resharding = 'Migrate' | 'Drop';

/** What the spec asks of the Redis Cluster. */
export interface MembershipSpec {
  shards: number;
  replicasPerShard: number;
  resharding: Resharding;
}

/** One pod and what it answered (null: it has no IP yet, or could not be reached). */
export interface PodReport {
  pod: RedisPod;
  inspection: NodeInspection | null;
}

/** A pod that answered, with its own line of CLUSTER NODES. */
export interface Member {
  pod: RedisPod;
  id: string;
  self: ClusterNode;
  inspection: NodeInspection;
  /** Ids of the other nodes it lists (handshakes under way aside). */
  knows: Set<string>;
  slots: number;
}

export interface ClusterModel {
  spec: MembershipSpec;
  reports: readonly PodReport[];
  /** Pods that answered and belong to the cluster (the group that owns the most slots). */
  members: Member[];
  /** Pods that answered, know no other node, own no slot and hold no key. */
  blank: Member[];
  /**
   * Pods that answered but are neither members nor blank: they know nodes outside the
   * cluster, or hold keys without belonging to it (left over from an earlier cluster).
   */
  strangers: Member[];
  /** Pods without an IP, or that did not answer. */
  missing: RedisPod[];
  /** True when no member owns a slot: the cluster has not been created yet. */
  uninitialized: boolean;
  byId: Map<string, Member>;
}

const isSelf = (node: ClusterNode) => node.flags.includes('myself');

export function memberOf(report: PodReport): Member | null {
  const { inspection } = report;
  if (inspection === null) return null;
  const self = inspection.nodes.find(isSelf);
  if (self === undefined) return null;
  return {
    pod: report.pod,
    id: self.id,
    self,
    inspection,
    // A handshake under way names a node by a temporary id: not yet someone it knows.
    knows: new Set(
      inspection.nodes
        .filter((node) => !isSelf(node) && !node.flags.includes('handshake'))
        .map((node) => node.id),
    ),
    slots: slotCount(self.slots),
  };
}

/** Groups answering pods into sets that know each other (directly or through others). */
function groups(answering: readonly Member[]): Member[][] {
  const parent = new Map<string, string>(answering.map((member) => [member.id, member.id]));
  const find = (id: string): string => {
    let root = id;
    while (parent.get(root) !== root) root = parent.get(root)!;
    return root;
  };
  for (const member of answering) {
    for (const other of member.knows) {
      if (parent.has(other)) parent.set(find(other), find(member.id));
    }
  }
  const byRoot = new Map<string, Member[]>();
  for (const member of answering) {
    const root = find(member.id);
    byRoot.set(root, [...(byRoot.get(root) ?? []), member]);
  }
  return [...byRoot.values()];
}

const groupSlots = (group: readonly Member[]) => group.reduce((sum, m) => sum + m.slots, 0);

/** Builds the model from what every pod answered. */
export function buildModel(spec: MembershipSpec, reports: readonly PodReport[]): ClusterModel {
  const answering: Member[] = [];
  const missing: RedisPod[] = [];
  for (const report of reports) {
    const member = memberOf(report);
    if (member === null) missing.push(report.pod);
    else answering.push(member);
  }
  const alone = (member: Member) => member.knows.size === 0 && member.slots === 0;
  const blank = answering.filter((member) => alone(member) && member.inspection.keys === 0);
  const candidates = groups(answering.filter((member) => !alone(member)));
  // The cluster is the group owning the most slots; before creation, the largest group.
  candidates.sort((a, b) => groupSlots(b) - groupSlots(a) || b.length - a.length);
  const main = candidates[0] ?? [];
  const strangers = [
    ...candidates.slice(1).flat(),
    ...answering.filter((member) => alone(member) && member.inspection.keys > 0),
  ];
  return {
    spec,
    reports,
    members: main,
    blank,
    strangers,
    missing,
    uninitialized: groupSlots(main) === 0,
    byId: new Map(main.map((member) => [member.id, member])),
  };
}

/** Flags that make a view transient: decisions wait until they are gone. */
const TRANSIENT = ['handshake', 'fail?'];

/** Lines of CLUSTER NODES, as every member sees them, for one node id. */
export function linesAbout(model: ClusterModel, id: string): ClusterNode[] {
  return model.members.flatMap((member) => member.inspection.nodes.filter((n) => n.id === id));
}

/**
 * redis-cli's configuration signature: every node's slots as the answering member sees
 * them. Members agree on the configuration when their signatures are equal.
 */
export function signature(member: Member): string {
  return member.inspection.nodes
    .filter((node) => node.slots.length > 0)
    .map((node) => `${node.id}:${node.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
    .sort()
    .join('|');
}

/** Who replicates whom, as the answering member sees it. */
function replicationSignature(member: Member): string {
  return member.inspection.nodes
    .map((node) => `${node.id}>${node.masterId ?? '-'}`)
    .sort()
    .join('|');
}

/** Why the view is not stable enough for a scale or zone decision, or null when it is. */
export function instability(model: ClusterModel): string | null {
  // Pods of shards scaled away may come and go: once out of the cluster they do not count.
  const staying = (pod: RedisPod) =>
    pod.shard < model.spec.shards && pod.ordinal <= model.spec.replicasPerShard;
  const missing = model.missing.filter(staying);
  if (missing.length > 0)
    return `pod ${missing.map((pod) => pod.name).join(', ')} does not answer yet`;
  const outside = [...model.blank, ...model.strangers].filter((member) => staying(member.pod));
  if (outside.length > 0)
    return `pod ${outside.map((member) => member.pod.name).join(', ')} is not part of the cluster yet`;
  for (const member of model.members) {
    for (const node of member.inspection.nodes) {
      const flag = TRANSIENT.find((candidate) => node.flags.includes(candidate));
      if (flag !== undefined)
        return `${member.pod.name} sees node ${node.address || node.id} as '${flag}'`;
      if (node.flags.includes('fail'))
        return `${member.pod.name} sees node ${node.address || node.id} as failed`;
    }
    const unknown = model.members.find((other) => other !== member && !member.knows.has(other.id));
    if (unknown !== undefined) return `${member.pod.name} does not know ${unknown.pod.name} yet`;
  }
  const signatures = new Set(model.members.map(signature));
  if (signatures.size > 1) return 'the nodes do not agree on who serves which slots yet';
  const replication = new Set(model.members.map(replicationSignature));
  if (replication.size > 1) return 'the nodes do not agree on who replicates whom yet';
  return null;
}

/** Slot owner ids as the majority of members sees them (index: slot; null: nobody). */
export function slotOwners(model: ClusterModel): (string | null)[] {
  const owners: (string | null)[] = new Array<string | null>(SLOTS).fill(null);
  // Each master's own claim first: it is what the node serves.
  const claimed = new Array<boolean>(SLOTS).fill(false);
  for (const member of model.members) {
    if (member.self.flags.includes('master')) {
      for (const [first, last] of member.self.slots) {
        for (let slot = first; slot <= last; slot++) {
          owners[slot] = member.id;
          claimed[slot] = true;
        }
      }
    }
  }
  // Slots no answering node claims: what the members say about nodes that do not answer.
  const votes = new Map<number, Map<string, number>>();
  for (const member of model.members) {
    for (const node of member.inspection.nodes) {
      if (node.flags.includes('myself') || model.byId.has(node.id)) continue;
      for (const [first, last] of node.slots) {
        for (let slot = first; slot <= last; slot++) {
          if (claimed[slot]) continue;
          const tally = votes.get(slot) ?? new Map<string, number>();
          tally.set(node.id, (tally.get(node.id) ?? 0) + 1);
          votes.set(slot, tally);
        }
      }
    }
  }
  for (const [slot, tally] of votes) {
    owners[slot] = [...tally.entries()].sort((a, b) => b[1] - a[1])[0]![0];
  }
  return owners;
}

/** Compresses sorted slots into inclusive ranges. */
export function toRanges(slots: readonly number[]): [number, number][] {
  const ranges: [number, number][] = [];
  for (const slot of slots) {
    const last = ranges.at(-1);
    if (last !== undefined && last[1] === slot - 1) last[1] = slot;
    else ranges.push([slot, slot]);
  }
  return ranges;
}

/** A short text for slot ranges: `0-5460, 10923`. */
export function describeRanges(ranges: readonly [number, number][]): string {
  const text = ranges
    .slice(0, 4)
    .map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
    .join(', ');
  return ranges.length > 4 ? `${text}, …` : text;
}
