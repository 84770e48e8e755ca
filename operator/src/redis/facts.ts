/**
 * Facts about the cluster the status reports and the planner's rules share: which shard a
 * member serves, who masters a shard, slot coverage, ready shards, shards free to delete.
 * Pure.
 */
import {
  describeRanges,
  slotOwners,
  SLOTS,
  toRanges,
  type ClusterModel,
  type Member,
  type MembershipSpec,
  type RedisPod,
} from './model.ts';

export const isMasterMember = (member: Member) => member.self.flags.includes('master');

/** A pod the spec wants in the cluster (not a shard scaled away, not a replica too many). */
export function wanted(spec: MembershipSpec, pod: RedisPod): boolean {
  return pod.shard < spec.shards && pod.ordinal <= spec.replicasPerShard && !pod.terminating;
}

/** The members of a shard's pods. */
export function shardMembers(model: ClusterModel, shard: number): Member[] {
  return model.members.filter((member) => member.pod.shard === shard);
}

/** The master serving a shard's slots now (the one with the most, should there be two). */
export function servingMaster(model: ClusterModel, shard: number): Member | undefined {
  return shardMembers(model, shard)
    .filter((member) => isMasterMember(member) && member.slots > 0)
    .sort((a, b) => b.slots - a.slots)[0];
}

/** Slots each shard owns, by the majority view; slots of nodes no pod answers for aside. */
export function ownedByShard(model: ClusterModel): Map<number, number[]> {
  const owned = new Map<number, number[]>();
  slotOwners(model).forEach((id, slot) => {
    const member = id === null ? undefined : model.byId.get(id);
    if (member === undefined) return;
    owned.set(member.pod.shard, [...(owned.get(member.pod.shard) ?? []), slot]);
  });
  return owned;
}

/** Replicas of a master that are members with their replication link up. */
export function linkedReplicas(model: ClusterModel, master: Member): Member[] {
  return model.members.filter(
    (member) =>
      member.self.masterId === master.id &&
      member.inspection.role === 'replica' &&
      member.inspection.masterLinkUp,
  );
}

/**
 * Shards of the spec with a master serving slots and every replica the spec asks for
 * attached and in sync.
 */
export function readyShards(model: ClusterModel): number {
  let ready = 0;
  for (let shard = 0; shard < model.spec.shards; shard++) {
    const master = servingMaster(model, shard);
    if (master === undefined) continue;
    if (linkedReplicas(model, master).length >= model.spec.replicasPerShard) ready++;
  }
  return ready;
}

export interface Verdict {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

const failedIn = (model: ClusterModel, id: string) =>
  model.members.some((member) =>
    member.inspection.nodes.some((node) => node.id === id && node.flags.includes('fail')),
  );

/** The SlotsCovered condition. */
export function coverage(model: ClusterModel): Verdict {
  if (model.reports.length === 0) {
    return { status: 'Unknown', reason: 'NoRedisPods', message: 'no Redis pod exists yet' };
  }
  if (model.members.length === 0) {
    return {
      status: 'Unknown',
      reason: 'NodesUnreachable',
      message: 'no Redis node of the cluster answers',
    };
  }
  if (model.uninitialized) {
    return {
      status: 'False',
      reason: 'ClusterNotCreated',
      message: 'the Redis nodes do not form a cluster yet',
    };
  }
  const owners = slotOwners(model);
  const unassigned: number[] = [];
  const failed: number[] = [];
  owners.forEach((id, slot) => {
    if (id === null) unassigned.push(slot);
    else if (!model.byId.has(id) && failedIn(model, id)) failed.push(slot);
  });
  if (unassigned.length > 0) {
    return {
      status: 'False',
      reason: 'SlotsUnassigned',
      message: `${unassigned.length} slots (${describeRanges(toRanges(unassigned))}) are served by no node`,
    };
  }
  if (failed.length > 0) {
    return {
      status: 'False',
      reason: 'MasterFailed',
      message: `${failed.length} slots (${describeRanges(toRanges(failed))}) belong to a master that failed; its replica takes over`,
    };
  }
  const masters = new Set(owners).size;
  return {
    status: 'True',
    reason: 'AllSlotsCovered',
    message: `all ${SLOTS} slots are served by ${masters} masters`,
  };
}

/**
 * Whether a shard's pods have left the cluster, so its StatefulSet may be deleted: none of
 * them is a member or serves a slot, none of them fails to answer while it may hold data,
 * and no member still lists one of their ids or addresses.
 */
export function removable(model: ClusterModel, shard: number): { done: boolean; reason: string } {
  const pods = model.reports.filter((report) => report.pod.shard === shard);
  for (const { pod, inspection } of pods) {
    if (pod.ip === undefined) continue;
    if (inspection === null)
      return { done: false, reason: `pod ${pod.name} cannot be reached to check it left` };
    const self = inspection.nodes.find((node) => node.flags.includes('myself'));
    if (self !== undefined && self.slots.length > 0)
      return { done: false, reason: `pod ${pod.name} still serves slots` };
  }
  const ids = new Set(
    pods.flatMap(
      ({ inspection }) =>
        inspection?.nodes.filter((node) => node.flags.includes('myself')).map((n) => n.id) ?? [],
    ),
  );
  const addresses = new Set(
    pods.filter(({ pod }) => pod.ip !== undefined).map(({ pod }) => `${pod.ip}:${pod.port}`),
  );
  for (const member of model.members) {
    if (member.pod.shard === shard)
      return { done: false, reason: `pod ${member.pod.name} is still a member` };
    const known = member.inspection.nodes.find(
      (node) => !node.flags.includes('myself') && (ids.has(node.id) || addresses.has(node.address)),
    );
    if (known !== undefined) {
      return {
        done: false,
        reason: `pod ${member.pod.name} still counts ${known.address || known.id} in the cluster`,
      };
    }
  }
  return { done: true, reason: 'no slots and no cluster membership left' };
}

/** Slots no reachable master serves: unassigned, or owned by a master that failed. */
export function uncoveredSlots(model: ClusterModel): number {
  if (model.uninitialized) return SLOTS;
  return slotOwners(model).filter(
    (id) => id === null || (!model.byId.has(id) && failedIn(model, id)),
  ).length;
}

/** Replicas running in the same zone as their master (both zones known). */
export function replicasBesideMaster(model: ClusterModel): number {
  return model.members.filter((member) => {
    if (member.inspection.role !== 'replica' || member.pod.zone === undefined) return false;
    const master = model.byId.get(member.self.masterId ?? '');
    return master?.pod.zone === member.pod.zone;
  }).length;
}
