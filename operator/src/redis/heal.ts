/**
 * Healing rules of the planner, for a cluster that exists: masters that failed without a
 * replica taking over, nodes that are gone, slots nobody serves, blank pods to introduce,
 * members that moved to a new address, nodes left over from another cluster. Pure.
 */
import { coverage, isMasterMember, ownedByShard, servingMaster, wanted } from './facts.ts';
import { slotOwners, toRanges, type ClusterModel, type Member } from './model.ts';
import type { PlanInput } from './planner.ts';
import { quotas } from './slots.ts';
import type { Step } from './steps.ts';
import type { ZonePlan } from './zones.ts';

type Outcome = { step: Step | null; waiting: string | null };
const NONE: Outcome = { step: null, waiting: null };

/** How long the cluster gets to fail a master over by itself before the operator steps in. */
export function failoverGraceMs(nodeTimeoutMs: number): number {
  return 2 * nodeTimeoutMs + 3_000;
}

/** The members' lines about a node that is not a member (it does not answer). */
function linesOf(model: ClusterModel, id: string) {
  return model.members.flatMap((member) =>
    member.inspection.nodes.filter((node) => node.id === id && !node.flags.includes('myself')),
  );
}

/** How long ago a member last heard from a node (the freshest pong any member saw). */
function silentForMs(model: ClusterModel, id: string, now: number): number {
  const last = Math.max(0, ...linesOf(model, id).map((line) => line.pongReceivedMs ?? 0));
  return last === 0 ? Number.POSITIVE_INFINITY : now - last;
}

const gone = (model: ClusterModel, id: string) =>
  linesOf(model, id).some((line) => line.flags.includes('fail') || line.flags.includes('noaddr'));

/** A master that owns slots, does not answer and is failed: its best replica takes over. */
function failedMaster(input: PlanInput, model: ClusterModel): Outcome {
  const owners = new Set(slotOwners(model).filter((id): id is string => id !== null));
  for (const id of owners) {
    if (model.byId.has(id) || !gone(model, id)) continue;
    const silent = silentForMs(model, id, input.now);
    const grace = failoverGraceMs(input.nodeTimeoutMs);
    if (silent < grace) {
      return {
        step: null,
        waiting: `master ${id} failed ${Math.round(silent / 1000)} s ago; waiting for its replica to take over`,
      };
    }
    const replicas = model.members
      .filter((member) => member.self.masterId === id && member.inspection.role === 'replica')
      .sort((a, b) => b.inspection.replicationOffset - a.inspection.replicationOffset);
    const best = replicas[0];
    if (best === undefined) {
      // Its whole shard is gone: its slots can only be served again once nobody lists it.
      return { step: { kind: 'Forget', ids: [id], on: model.members }, waiting: null };
    }
    const asked = input.failover;
    if (asked !== undefined && asked.pod === best.pod.name) {
      const since = input.now - asked.at;
      if (since < grace)
        return { step: null, waiting: `waiting for ${best.pod.name} to take over` };
      if (asked.mode === 'FORCE') {
        // No majority of masters voted for it (a zone is down): take over without a vote.
        return {
          step: {
            kind: 'Failover',
            member: best,
            mode: 'TAKEOVER',
            reason: `master ${id} failed and no vote came`,
          },
          waiting: null,
        };
      }
    }
    return {
      step: { kind: 'Failover', member: best, mode: 'FORCE', reason: `its master ${id} failed` },
      waiting: null,
    };
  }
  return NONE;
}

/** Nodes listed as failed or without address that own nothing: forgotten by every member. */
function ghosts(input: PlanInput, model: ClusterModel): Outcome {
  const ids = new Set<string>();
  for (const member of model.members) {
    for (const node of member.inspection.nodes) {
      if (node.flags.includes('myself') || model.byId.has(node.id)) continue;
      if (node.flags.includes('handshake') || node.slots.length > 0) continue;
      if (!gone(model, node.id)) continue;
      if (silentForMs(model, node.id, input.now) < failoverGraceMs(input.nodeTimeoutMs)) continue;
      ids.add(node.id);
    }
  }
  // Asked of every member that lists one of them, but a replica cannot forget its own
  // master: it is re-pointed first (replication rule) or removed (a leaving one).
  const on = model.members.filter(
    (member) => !ids.has(member.self.masterId ?? '') && [...ids].some((id) => member.knows.has(id)),
  );
  if (on.length === 0) return NONE;
  return { step: { kind: 'Forget', ids: [...ids].sort(), on }, waiting: null };
}

/** Blank pods the spec wants, introduced to the cluster through a master. */
function introduce(model: ClusterModel): Outcome {
  const pods = model.blank.filter((member) => wanted(model.spec, member.pod));
  const from = model.members.find((member) => isMasterMember(member) && member.slots > 0);
  if (pods.length === 0 || from === undefined) return NONE;
  return { step: { kind: 'Meet', from, pods: pods.map((member) => member.pod) }, waiting: null };
}

/**
 * Members the others lost track of: not listed at all, or listed at another address and
 * failing there (the pod got a new IP). A MEET to the new address lets the node's known
 * id take the new address; gossip carries it on.
 */
function reintroduce(model: ClusterModel): Outcome {
  let best: { from: Member; pods: Member[] } | undefined;
  for (const viewer of model.members) {
    const lost = model.members.filter((member) => {
      if (member === viewer) return false;
      const line = viewer.inspection.nodes.find((node) => node.id === member.id);
      // Forgotten, then back: gossip reaches the viewer only from a node it knows that knows
      // the member. Nodes forgotten together (a zone that came back) know each other, and
      // nobody else: only a MEET helps.
      if (line === undefined)
        return !model.members.some(
          (other) => other !== member && viewer.knows.has(other.id) && other.knows.has(member.id),
        );
      const unhealthy =
        !line.connected || line.flags.some((flag) => flag === 'fail' || flag === 'fail?');
      return unhealthy && line.address !== `${member.pod.ip}:${member.pod.port}`;
    });
    if (lost.length > (best?.pods.length ?? 0)) best = { from: viewer, pods: lost };
  }
  if (best === undefined) return NONE;
  return {
    step: { kind: 'Meet', from: best.from, pods: best.pods.map((member) => member.pod) },
    waiting: null,
  };
}

/** Slots no node serves go to the shard short of slots (its master, or its chosen one). */
function unserved(model: ClusterModel, zones: ZonePlan): Outcome {
  const free = slotOwners(model).flatMap((id, slot) => (id === null ? [slot] : []));
  if (free.length === 0) return NONE;
  const quota = quotas(model.spec.shards);
  const owned = ownedByShard(model);
  const deficits = quota
    .map((count, shard) => ({ shard, deficit: count - (owned.get(shard)?.length ?? 0) }))
    .filter(({ deficit }) => deficit > 0)
    .sort((a, b) => b.deficit - a.deficit || a.shard - b.shard);
  for (const { shard, deficit } of deficits) {
    const member =
      servingMaster(model, shard) ??
      model.members.find(
        (candidate) => candidate.pod.name === zones.masters.get(shard) && isMasterMember(candidate),
      );
    if (member === undefined) continue;
    const ranges = toRanges(free.slice(0, deficit));
    return { step: { kind: 'ClaimSlots', member, ranges }, waiting: null };
  }
  // No shard short of slots has a node to take them: availability first, the master with
  // the fewest slots serves them until its shard's pods are back (moves even it out later).
  const fallback = model.members
    .filter((member) => isMasterMember(member) && member.slots > 0)
    .sort((a, b) => a.slots - b.slots)[0];
  if (fallback === undefined)
    return { step: null, waiting: 'no master can take the unserved slots' };
  return { step: { kind: 'ClaimSlots', member: fallback, ranges: toRanges(free) }, waiting: null };
}

/** Nodes left over from another cluster, reset once the cluster serves every slot without them. */
function strangers(model: ClusterModel): Outcome {
  if (model.strangers.length === 0 || coverage(model).status !== 'True') return NONE;
  return { step: { kind: 'Reset', nodes: model.strangers }, waiting: null };
}

export function healStep(input: PlanInput, model: ClusterModel, zones: ZonePlan): Outcome {
  for (const rule of [
    () => failedMaster(input, model),
    () => ghosts(input, model),
    () => introduce(model),
    () => reintroduce(model),
    () => unserved(model, zones),
    () => strangers(model),
  ]) {
    const outcome = rule();
    if (outcome.step !== null || outcome.waiting !== null) return outcome;
  }
  return NONE;
}
