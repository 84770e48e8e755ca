/** The steps the planner chooses from; the executor carries out exactly one per reconcile. */
import type { Member, RedisPod } from './model.ts';
import type { ResumeMove } from './open-slots.ts';

export type Step =
  /** CLUSTER MEET, from a member (or the seed) to pods not in the cluster yet. */
  | { kind: 'Meet'; from: Member; pods: RedisPod[] }
  /** ADDSLOTSRANGE on the masters of a new cluster. */
  | { kind: 'AssignSlots'; assignments: { member: Member; ranges: [number, number][] }[] }
  /** ADDSLOTSRANGE + BUMPEPOCH for slots nobody serves (a lost shard, an interrupted create). */
  | { kind: 'ClaimSlots'; member: Member; ranges: [number, number][] }
  /** CLUSTER REPLICATE of pods to their shard's master. */
  | { kind: 'Replicate'; links: { member: Member; master: Member }[] }
  /** Moves slots with their keys (or, in Drop mode, without the blobs S3 has). */
  | { kind: 'MoveSlots'; source: Member; target: Member; slots: number[]; drop: boolean }
  /** Finishes slots an interrupted move left open, forward. */
  | {
      kind: 'FinishOpenSlots';
      resume: ResumeMove[];
      close: { member: Member; slots: number[] }[];
      claim: { member: Member; slots: number[] }[];
    }
  /** CLUSTER FAILOVER on a replica: a zone fix (default) or a master that is gone (FORCE). */
  | { kind: 'Failover'; member: Member; mode?: 'FORCE' | 'TAKEOVER'; reason: string }
  /** CLUSTER FORGET of nodes that are gone, on every member. */
  | { kind: 'Forget'; ids: string[]; on: Member[] }
  /** Takes nodes out of the cluster: RESET HARD on them, FORGET of their ids on the rest. */
  | { kind: 'RemoveNodes'; nodes: Member[]; on: Member[] }
  /** RESET HARD of nodes left over from another cluster, so they can join as blank ones. */
  | { kind: 'Reset'; nodes: Member[] }
  /** SET bc:incarnation NX on the master of its slot. */
  | { kind: 'SetIncarnation'; owner: Member; replicas: number };

export type StepKind = Step['kind'];

export type OperationType =
  'Create' | 'ScaleOut' | 'ScaleIn' | 'Rebalance' | 'Heal' | 'ZoneBalance';

/** A line for an Event and the log saying what a step does. */
export function describeStep(step: Step): string {
  const pods = (members: readonly { pod: RedisPod }[]) =>
    members.map((member) => member.pod.name).join(', ');
  switch (step.kind) {
    case 'Meet':
      return `Introduced ${step.pods.map((pod) => pod.name).join(', ')} to the cluster through ${step.from.pod.name}`;
    case 'AssignSlots':
      return `Assigned the 16384 slots to ${pods(step.assignments.map(({ member }) => member))}`;
    case 'ClaimSlots':
      return `Gave ${step.ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ')}, served by no node, to ${step.member.pod.name}`;
    case 'Replicate':
      return step.links
        .map(({ member, master }) => `${member.pod.name} now replicates ${master.pod.name}`)
        .join('; ');
    case 'MoveSlots':
      return `Moving ${step.slots.length} slots from ${step.source.pod.name} to ${step.target.pod.name}${step.drop ? ' (dropping blobs S3 has)' : ''}`;
    case 'FinishOpenSlots': {
      const parts = [
        ...step.resume.map(
          (move) =>
            `finishing ${move.slots.length} open slots from ${move.source.pod.name} to ${move.target.pod.name}`,
        ),
        ...step.claim.map((entry) => `${entry.member.pod.name} claims ${entry.slots.length} slots`),
        ...step.close.map(
          (entry) => `closing ${entry.slots.length} slots on ${entry.member.pod.name}`,
        ),
      ];
      return `Open slots: ${parts.join('; ')}`;
    }
    case 'Failover':
      return `Asked ${step.member.pod.name} to take over as master${step.mode === undefined ? '' : ` (${step.mode})`}: ${step.reason}`;
    case 'Forget':
      return `Forgot node ${step.ids.join(', ')} on ${pods(step.on)}`;
    case 'RemoveNodes':
      return `Removed ${pods(step.nodes)} from the cluster`;
    case 'Reset':
      return `Reset ${pods(step.nodes)}, left over from another cluster`;
    case 'SetIncarnation':
      return `Recorded a new incarnation of the cache on ${step.owner.pod.name}`;
  }
}
