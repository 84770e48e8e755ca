/**
 * Carries out one step the planner chose, through RedisAdmin. Each command is one the
 * cluster accepts again without harm, so a step cut short (an operator killed mid-way, a
 * node that stopped answering) is completed by the next plan.
 */
import { randomUUID } from 'node:crypto';
import type { RedisAdmin, RedisEndpoint } from './admin.ts';
import { INCARNATION_KEY } from './blob-layout.ts';
import {
  DEFAULT_MOVE_OPTIONS,
  moveSlots,
  type MoveNode,
  type MoveOptions,
  type MoveResult,
} from './migrate.ts';
import { isMasterMember } from './facts.ts';
import type { ClusterModel, Member, RedisPod } from './model.ts';
import type { Step } from './steps.ts';

export interface ExecuteOptions {
  password?: string;
  /** How long one step may keep starting new slot groups. @default 5000 */
  moveBudgetMs?: number;
  move?: Partial<Omit<MoveOptions, 'deadline'>>;
  now?: () => number;
}

export interface StepOutcome {
  /** Slots moved by MoveSlots or FinishOpenSlots. */
  moved?: MoveResult;
  /** The failover asked for (to be waited for by the next plans). */
  failover?: { pod: string; at: number; mode?: string };
  /** The incarnation the cluster holds after SetIncarnation. */
  incarnation?: string;
}

export function endpointOf(pod: RedisPod, password?: string): RedisEndpoint {
  return { host: pod.ip!, port: pod.port, ...(password === undefined ? {} : { password }) };
}

export async function executeStep(
  admin: RedisAdmin,
  model: ClusterModel,
  step: Step,
  options: ExecuteOptions = {},
): Promise<StepOutcome> {
  const { password } = options;
  const now = options.now ?? Date.now;
  const at = (member: Member) => endpointOf(member.pod, password);
  const node = (member: Member): MoveNode => ({ ...at(member), id: member.id });
  const move = async (
    source: Member,
    target: Member,
    slots: number[],
    drop: boolean,
    open?: Set<number>,
  ) => {
    const others = model.members
      .filter((member) => isMasterMember(member) && member !== source && member !== target)
      .map(at);
    const targetReplicas = model.members
      .filter((member) => member.self.masterId === target.id)
      .map(at);
    return moveSlots(
      admin,
      {
        source: node(source),
        target: node(target),
        others,
        targetReplicas,
        slots,
        drop,
        ...(open ? { open } : {}),
      },
      {
        ...DEFAULT_MOVE_OPTIONS,
        ...options.move,
        deadline: now() + (options.moveBudgetMs ?? 5_000),
      },
    );
  };
  switch (step.kind) {
    case 'Meet':
      for (const pod of step.pods) await admin.meet(at(step.from), { ip: pod.ip!, port: pod.port });
      return {};
    case 'AssignSlots':
      for (const { member, ranges } of step.assignments) await admin.addSlots(at(member), ranges);
      return {};
    case 'ClaimSlots':
      await admin.addSlots(at(step.member), step.ranges);
      await admin.bumpEpoch(at(step.member));
      return {};
    case 'Replicate':
      for (const { member, master } of step.links) await admin.replicate(at(member), master.id);
      return {};
    case 'MoveSlots':
      return { moved: await move(step.source, step.target, step.slots, step.drop) };
    case 'FinishOpenSlots': {
      for (const { member, slots } of step.close) await admin.setSlots(at(member), slots, 'STABLE');
      for (const { member, slots } of step.claim)
        await admin.setSlots(at(member), slots, 'NODE', member.id);
      let moved: MoveResult | undefined;
      for (const resume of step.resume) {
        if (resume.restoreOwner.length > 0)
          await admin.setSlots(at(resume.target), resume.restoreOwner, 'NODE', resume.source.id);
        moved = await move(
          resume.source,
          resume.target,
          resume.slots,
          false,
          new Set(resume.slots),
        );
      }
      return moved === undefined ? {} : { moved };
    }
    case 'Failover':
      await admin.failover(at(step.member), step.mode);
      return {
        failover: {
          pod: step.member.pod.name,
          at: now(),
          ...(step.mode === undefined ? {} : { mode: step.mode }),
        },
      };
    case 'Forget':
      for (const member of step.on)
        for (const id of step.ids) if (id !== member.id) await admin.forget(at(member), id);
      return {};
    case 'RemoveNodes': {
      // Reset first: a reset node forgets everyone and takes a new id, so nothing it says
      // can bring the old id back while the others forget it.
      // Replicas first: a replica whose master was reset first would keep a ghost as master.
      const order = [...step.nodes].sort(
        (a, b) => Number(isMasterMember(a)) - Number(isMasterMember(b)),
      );
      for (const member of order) await admin.reset(at(member));
      for (const member of step.on)
        for (const { id } of step.nodes) await admin.forget(at(member), id);
      return {};
    }
    case 'Reset':
      for (const member of step.nodes) await admin.reset(at(member));
      return {};
    case 'SetIncarnation': {
      const { value } = await admin.setIfAbsent(at(step.owner), INCARNATION_KEY, randomUUID(), {
        replicas: step.replicas,
        timeoutMs: 2_000,
      });
      return { incarnation: value };
    }
  }
}
