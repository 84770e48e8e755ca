/**
 * Rules of the planner that need a stable view (every pod answers, every node agrees):
 * moving slots towards the spec's shard count, removing nodes the spec no longer wants,
 * moving masters between zones, and recording the data set's incarnation. Pure.
 */
import calculateSlot from 'cluster-key-slot';
import { coverage, linkedReplicas, ownedByShard, servingMaster, isMasterMember } from './facts.ts';
import { INCARNATION_KEY } from './blob-layout.ts';
import { slotOwners, type ClusterModel, type Member } from './model.ts';
import type { PlanInput } from './planner.ts';
import { nextMove } from './slots.ts';
import type { OperationType, Step } from './steps.ts';
import type { ZonePlan } from './zones.ts';

/** Most slots one MoveSlots step is given (the executor stops earlier at its time budget). */
export const MAX_SLOTS_PER_STEP = 2_048;

/** How long a requested failover is waited for before it is asked again. */
export const FAILOVER_WAIT_MS = 10_000;

type Outcome = { step: Step | null; waiting: string | null; operation?: OperationType };
const NONE: Outcome = { step: null, waiting: null };

/** A pod the spec no longer wants (its shard scaled away, or a replica too many). */
export const leaving = (model: ClusterModel, member: Member) =>
  member.pod.shard >= model.spec.shards || member.pod.ordinal > model.spec.replicasPerShard;

/** The master a shard receives slots on: its serving master, or the one chosen for it. */
function receiver(model: ClusterModel, zones: ZonePlan, shard: number): Member | undefined {
  return (
    servingMaster(model, shard) ??
    model.members.find(
      (member) => member.pod.name === zones.masters.get(shard) && isMasterMember(member),
    )
  );
}

function moves(model: ClusterModel, zones: ZonePlan): Outcome {
  const { spec } = model;
  const owned = ownedByShard(model);
  // Slots go only to a master whose replicas are attached and in sync: every key it
  // receives is copied at once, and a replica of a master without slots cannot fail over.
  const ready = (shard: number) => {
    const master = receiver(model, zones, shard);
    return master !== undefined && linkedReplicas(model, master).length >= spec.replicasPerShard;
  };
  const move = nextMove(owned, spec.shards, MAX_SLOTS_PER_STEP, ready);
  const pending = nextMove(owned, spec.shards, MAX_SLOTS_PER_STEP);
  if (move === null) {
    if (pending === null) return NONE;
    return {
      step: null,
      waiting: `shard ${pending.to} is not ready to receive slots (its replicas are not attached yet)`,
    };
  }
  const source = servingMaster(model, move.from)!;
  const target = receiver(model, zones, move.to)!;
  const operation: OperationType =
    move.from >= spec.shards
      ? 'ScaleIn'
      : (owned.get(move.to)?.length ?? 0) === 0
        ? 'ScaleOut'
        : 'Rebalance';
  return {
    step: {
      kind: 'MoveSlots',
      source,
      target,
      slots: move.slots,
      drop: spec.resharding === 'Drop',
    },
    waiting: null,
    operation,
  };
}

function zoneFix(input: PlanInput, model: ClusterModel, zones: ZonePlan): Outcome {
  for (const [shard, name] of [...zones.masters].sort((a, b) => a[0] - b[0])) {
    const current = servingMaster(model, shard);
    if (current === undefined || current.pod.name === name) continue;
    const wantedMaster = model.members.find((member) => member.pod.name === name);
    if (wantedMaster === undefined) continue;
    const asked = input.failover;
    if (asked?.pod === name && input.now - asked.at < FAILOVER_WAIT_MS)
      return {
        step: null,
        waiting: `waiting for ${name} to take over as master`,
        operation: 'ZoneBalance',
      };
    if (wantedMaster.self.masterId !== current.id || !wantedMaster.inspection.masterLinkUp) {
      return {
        step: null,
        waiting: `waiting for ${name} to be in sync with ${current.pod.name}`,
        operation: 'ZoneBalance',
      };
    }
    return {
      step: {
        kind: 'Failover',
        member: wantedMaster,
        reason: `shard ${shard}: ${zones.verdict.status === 'True' ? 'a master the spec no longer wants' : zones.verdict.message}`,
      },
      waiting: null,
      operation: 'ZoneBalance',
    };
  }
  return NONE;
}

/**
 * Members the spec no longer wants, once they own nothing in anyone's view and no slot is
 * open towards them: reset, and forgotten by the others. Safe on an unstable view (they
 * serve nothing), and needed there: a leaving replica keeps listing its reset master.
 */
export function removals(model: ClusterModel): Outcome {
  const owners = new Set(slotOwners(model));
  const involved = new Set(
    model.members.flatMap((member) => [
      ...member.self.migrating.map((entry) => entry.to),
      ...member.self.importing.map((entry) => entry.from),
    ]),
  );
  // The replicas of a master of a shard scaled away stay until it has handed over every
  // slot: they keep its (possibly not yet persisted) blobs safe while the slots move.
  const guarding = (member: Member) => {
    const master = member.self.masterId === null ? undefined : model.byId.get(member.self.masterId);
    return master !== undefined && master.pod.shard >= model.spec.shards && owners.has(master.id);
  };
  const nodes = model.members.filter(
    (member) =>
      leaving(model, member) &&
      member.slots === 0 &&
      !owners.has(member.id) &&
      !involved.has(member.id) &&
      !guarding(member),
  );
  if (nodes.length === 0) return NONE;
  const on = model.members.filter((member) => !nodes.includes(member));
  const scaleIn = nodes.some((member) => member.pod.shard >= model.spec.shards);
  return {
    step: { kind: 'RemoveNodes', nodes, on },
    waiting: null,
    operation: scaleIn ? 'ScaleIn' : 'Heal',
  };
}

function incarnation(input: PlanInput, model: ClusterModel): Outcome {
  if (input.incarnation !== null || coverage(model).status !== 'True') return NONE;
  const id = slotOwners(model)[calculateSlot(INCARNATION_KEY)];
  const owner = id === null || id === undefined ? undefined : model.byId.get(id);
  if (owner === undefined) return NONE;
  return {
    step: { kind: 'SetIncarnation', owner, replicas: Math.min(1, model.spec.replicasPerShard) },
    waiting: null,
    operation: 'Create',
  };
}

/** A replica still copying its master's data: the shard is not whole yet. */
function syncing(model: ClusterModel): Outcome {
  const replica = model.members.find(
    (member) => member.inspection.role === 'replica' && !member.inspection.masterLinkUp,
  );
  if (replica === undefined) return NONE;
  return {
    step: null,
    waiting: `${replica.pod.name} is copying its master's data`,
    operation: 'Heal',
  };
}

export function scaleStep(input: PlanInput, model: ClusterModel, zones: ZonePlan): Outcome {
  for (const rule of [
    () => moves(model, zones),
    () => zoneFix(input, model, zones),
    () => incarnation(input, model),
    () => syncing(model),
  ]) {
    const outcome = rule();
    if (outcome.step !== null || outcome.waiting !== null) return outcome;
  }
  return NONE;
}
