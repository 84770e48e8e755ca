/**
 * The planner: from what the spec asks and what every Redis pod answered, the one next
 * step that is safe now, or why none is. Pure: the same inputs always give the same step,
 * and everything it needs to resume an interrupted operation is in Redis itself (slot
 * ownership, open-slot markers) or in the inputs (the failover it last asked for).
 *
 * Rules, first match wins: create a cluster that does not exist; finish open slots; replace
 * failed masters; forget nodes that are gone; give unserved slots a master; reset strangers;
 * introduce blank pods; re-introduce moved ones; attach replicas. Only on a stable view
 * (every pod answers, every node agrees, nothing failing): move slots, remove leaving
 * nodes, fix zones, record the incarnation.
 */
import { coverage, readyShards, removable, servingMaster, wanted, type Verdict } from './facts.ts';
import { healStep } from './heal.ts';
import {
  buildModel,
  instability,
  type ClusterModel,
  type Member,
  type MembershipSpec,
  type PodReport,
} from './model.ts';
import { hasOpenSlots, planOpenSlots } from './open-slots.ts';
import { replicateStep } from './replicate.ts';
import { removals, scaleStep } from './scale.ts';
import { initialRanges } from './slots.ts';
import type { OperationType, Step } from './steps.ts';
import { placeMasters, type ZonePlan } from './zones.ts';

export interface PlanInput {
  spec: MembershipSpec;
  reports: readonly PodReport[];
  /** Unix ms. */
  now: number;
  /** The nodes' cluster-node-timeout. */
  nodeTimeoutMs: number;
  /** `bc:incarnation` as read from its master: null absent, undefined not read. */
  incarnation?: string | null;
  /** The failover the operator last asked for, from status (to wait for it to happen). */
  failover?: { pod: string; at: number; mode?: string };
}

export interface Plan {
  /** What is under way (null: the cluster is as the spec asks). */
  operation: OperationType | null;
  step: Step | null;
  /** Why no step can be taken now (set when operation is set and step is not). */
  waiting: string | null;
  slotsCovered: Verdict;
  zoneSpread: Verdict;
  shardsReady: number;
  model: ClusterModel;
  zones: ZonePlan;
}

/** What the spec wants of the cluster's size and layout, compared with what it is. */
function goal(model: ClusterModel): OperationType | null {
  const { spec } = model;
  if (model.uninitialized) return 'Create';
  const leaving = model.members.some((member) => member.pod.shard >= spec.shards);
  if (leaving) return 'ScaleIn';
  for (let shard = 0; shard < spec.shards; shard++)
    if (servingMaster(model, shard) === undefined) return 'ScaleOut';
  return null;
}

/** The zone placement over the shards of the spec, from the given pods (default: members). */
export function zonePlan(model: ClusterModel, among: readonly Member[] = model.members): ZonePlan {
  const shards = Array.from({ length: model.spec.shards }, (_, shard) => {
    const members = among.filter(
      (member) => member.pod.shard === shard && wanted(model.spec, member.pod),
    );
    const master = servingMaster(model, shard);
    return {
      shard,
      pods: members.map((member) => ({
        name: member.pod.name,
        ...(member.pod.zone === undefined ? {} : { zone: member.pod.zone }),
      })),
      ...(master === undefined ? {} : { master: master.pod.name }),
    };
  }).filter((shard) => shard.pods.length > 0);
  return placeMasters(shards);
}

/** Creating a cluster: every wanted pod answers, knows the others, then the slots. */
function createStep(model: ClusterModel): { step: Step | null; waiting: string | null } {
  const { spec } = model;
  const expected = spec.shards * (1 + spec.replicasPerShard);
  const pods = model.reports.map((report) => report.pod).filter((pod) => wanted(spec, pod));
  const absent = model.missing.filter((pod) => wanted(spec, pod));
  if (pods.length < expected || absent.length > 0) {
    const names = absent.map((pod) => pod.name);
    return {
      step: null,
      waiting:
        names.length > 0
          ? `waiting for pod ${names.join(', ')} to answer`
          : `waiting for ${expected - pods.length} more Redis pods`,
    };
  }
  const terminating = model.reports.find((report) => report.pod.terminating);
  if (terminating !== undefined)
    return { step: null, waiting: `waiting for pod ${terminating.pod.name} to finish terminating` };
  const strangers = model.strangers.filter((member) => wanted(spec, member.pod));
  if (strangers.length > 0) return { step: { kind: 'Reset', nodes: strangers }, waiting: null };
  const seed = model.members[0] ?? model.blank.find((member) => wanted(spec, member.pod))!;
  const inCluster = new Set(model.members.map((member) => member.id));
  const outside = model.blank.filter(
    (member) => wanted(spec, member.pod) && member !== seed && !inCluster.has(member.id),
  );
  if (outside.length > 0)
    return { step: { kind: 'Meet', from: seed, pods: outside.map((m) => m.pod) }, waiting: null };
  const everyone = [...model.members, ...model.blank].filter((member) => wanted(spec, member.pod));
  const unaware = everyone.find((member) =>
    everyone.some((other) => other !== member && !member.knows.has(other.id)),
  );
  if (unaware !== undefined)
    return { step: null, waiting: `waiting for ${unaware.pod.name} to learn every node` };
  const zones = zonePlan(model, everyone);
  const ranges = initialRanges(spec.shards);
  const assignments = ranges.map((range, shard) => {
    const name = zones.masters.get(shard);
    const member = everyone.find((candidate) => candidate.pod.name === name)!;
    return { member, ranges: [range] };
  });
  return { step: { kind: 'AssignSlots', assignments }, waiting: null };
}

export function plan(input: PlanInput): Plan {
  const model = buildModel(input.spec, input.reports);
  const zones = zonePlan(model);
  const base = {
    slotsCovered: coverage(model),
    zoneSpread: zones.verdict,
    shardsReady: readyShards(model),
    model,
    zones,
  };
  const result = (
    operation: OperationType | null,
    step: Step | null,
    waiting: string | null,
  ): Plan => ({ ...base, operation, step, waiting });
  const target = goal(model);
  // No pod yet (their StatefulSets were just applied): nothing to do until they exist.
  if (model.reports.length === 0) return result(null, null, null);
  if (model.members.length === 0 && model.blank.length === 0 && model.strangers.length === 0)
    return result(target ?? 'Create', null, 'no Redis pod answers yet');
  if (model.uninitialized) {
    const created = createStep(model);
    return result('Create', created.step, created.waiting);
  }
  const open = planOpenSlots(model);
  if (hasOpenSlots(open)) {
    return result(
      target ?? 'Heal',
      { kind: 'FinishOpenSlots', ...open, resume: open.resume.slice(0, 1) },
      null,
    );
  }
  if (open.waiting.length > 0) return result(target ?? 'Heal', null, open.waiting[0]!);
  const healed = healStep(input, model, zones);
  if (healed.step !== null || healed.waiting !== null)
    return result(target ?? 'Heal', healed.step, healed.waiting);
  const removed = removals(model);
  if (removed.step !== null)
    return result(removed.operation ?? target ?? 'Heal', removed.step, null);
  const replicated = replicateStep(model, zones);
  if (replicated.step !== null || replicated.waiting !== null)
    return result(target ?? 'Heal', replicated.step, replicated.waiting);
  const unstable = instability(model);
  if (unstable !== null) return result(target ?? 'Heal', null, `waiting: ${unstable}`);
  const scaled = scaleStep(input, model, zones);
  if (scaled.step !== null || scaled.waiting !== null)
    return result(scaled.operation ?? target ?? 'Rebalance', scaled.step, scaled.waiting);
  return result(null, null, null);
}

export { removable };
