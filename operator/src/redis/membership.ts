/**
 * One round of cluster membership: ask every Redis pod, plan, carry out at most one step,
 * and say what the status should show. The membership phase runs it with pods from the
 * Kubernetes API; the cluster tests run the very same function with pods on loopback.
 */
import calculateSlot from 'cluster-key-slot';
import type { BlobCacheStatus } from '../api/v1alpha1/types.generated.ts';
import type { RedisAdmin } from './admin.ts';
import { INCARNATION_KEY } from './blob-layout.ts';
import { endpointOf, executeStep, type ExecuteOptions, type StepOutcome } from './execute.ts';
import { coverage, removable, replicasBesideMaster, uncoveredSlots } from './facts.ts';
import { MoveBlockedError } from './migrate.ts';
import {
  buildModel,
  slotOwners,
  type MembershipSpec,
  type PodReport,
  type RedisPod,
} from './model.ts';
import { plan, type Plan } from './planner.ts';
import { describeStep, type OperationType, type StepKind } from './steps.ts';
import type { Verdict } from './facts.ts';

/** The operation as status.operation keeps it. */
export type RecordedOperation = NonNullable<BlobCacheStatus['operation']>;

export interface MembershipInput {
  spec: MembershipSpec;
  /** Every Redis pod of the cache, including those of shards scaled away. */
  pods: readonly RedisPod[];
  password?: string;
  nodeTimeoutMs: number;
  /** The operation the last round recorded (status.operation). */
  recorded?: RecordedOperation;
}

export interface MembershipEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface MembershipOutcome {
  /** What status.operation should say (undefined: nothing under way). */
  operation?: RecordedOperation;
  slotsCovered: Verdict;
  zoneSpread: Verdict;
  /** Set when the operation cannot go on until someone acts. */
  blocked?: { reason: string; message: string };
  shardsReady: number;
  /** Slots no reachable master serves (all of them before the cluster exists). */
  slotsUncovered: number;
  /** Replicas in their master's zone. */
  replicasInMasterZone: number;
  /** Whether a shard's pods have left the cluster (its StatefulSet may be deleted). */
  removable(shard: number): { done: boolean; reason: string };
  events: MembershipEvent[];
  /** The step carried out, if any, and what it did. */
  executed?: { kind: StepKind; description: string; outcome: StepOutcome };
  /** The step that failed, if any (the round is retried). */
  error?: Error;
  incarnation?: string;
  requeueAfterMs: number;
  plan: Plan;
}

/** What the status needs from a membership round (see computeStatus). */
export type MembershipReport = Pick<
  MembershipOutcome,
  | 'slotsCovered'
  | 'zoneSpread'
  | 'blocked'
  | 'shardsReady'
  | 'incarnation'
  | 'slotsUncovered'
  | 'replicasInMasterZone'
>;

export interface MembershipOptions extends ExecuteOptions {
  now?: () => number;
  /** Poll interval of a cluster that needs nothing. @default 30000 */
  idlePollMs?: number;
}

const STEP_POLL_MS = 500;
const WAIT_POLL_MS = 1_000;

async function observe(admin: RedisAdmin, input: MembershipInput): Promise<PodReport[]> {
  return Promise.all(
    input.pods.map(async (pod) => ({
      pod,
      inspection:
        pod.ip === undefined ? null : await admin.inspect(endpointOf(pod, input.password)),
    })),
  );
}

/** bc:incarnation from the master of its slot, once every slot is served (else undefined). */
async function readIncarnation(
  admin: RedisAdmin,
  input: MembershipInput,
  reports: PodReport[],
): Promise<string | null | undefined> {
  const model = buildModel(input.spec, reports);
  if (model.uninitialized || coverage(model).status !== 'True') return undefined;
  const owner = model.byId.get(slotOwners(model)[calculateSlot(INCARNATION_KEY)] ?? '');
  if (owner === undefined) return undefined;
  // A slot on the move could answer "absent" for a key that is merely elsewhere; a node
  // that does not yet see the cluster as ok answers CLUSTERDOWN.
  if (owner.self.migrating.length > 0 || !owner.inspection.clusterOk) return undefined;
  return admin.get(endpointOf(owner.pod, input.password), INCARNATION_KEY);
}

function recordedFailover(recorded: RecordedOperation | undefined) {
  const failover = recorded?.state?.failover as
    { pod?: string; at?: string; mode?: string } | undefined;
  if (failover?.pod === undefined || failover.at === undefined) return undefined;
  return {
    pod: failover.pod,
    at: Date.parse(failover.at),
    ...(failover.mode === undefined ? {} : { mode: failover.mode }),
  };
}

export async function reconcileMembership(
  admin: RedisAdmin,
  input: MembershipInput,
  options: MembershipOptions = {},
): Promise<MembershipOutcome> {
  const now = options.now ?? Date.now;
  const reports = await observe(admin, input);
  const incarnation = await readIncarnation(admin, input, reports);
  const failover = recordedFailover(input.recorded);
  const chosen = plan({
    spec: input.spec,
    reports,
    now: now(),
    nodeTimeoutMs: input.nodeTimeoutMs,
    ...(incarnation === undefined ? {} : { incarnation }),
    ...(failover === undefined ? {} : { failover }),
  });
  const events: MembershipEvent[] = [];
  let executed: MembershipOutcome['executed'];
  let error: Error | undefined;
  let blocked: MembershipOutcome['blocked'];
  if (chosen.step !== null) {
    const description = describeStep(chosen.step);
    try {
      const outcome = await executeStep(admin, chosen.model, chosen.step, {
        ...options,
        ...(input.password === undefined ? {} : { password: input.password }),
        now,
      });
      executed = { kind: chosen.step.kind, description, outcome };
      events.push({
        type: 'Normal',
        reason: chosen.step.kind,
        message: summary(description, outcome),
      });
    } catch (caught) {
      error = caught instanceof Error ? caught : new Error(String(caught));
      if (error instanceof MoveBlockedError)
        blocked = { reason: error.reason, message: error.message };
      events.push({
        type: 'Warning',
        reason: blocked?.reason ?? `${chosen.step.kind}Failed`,
        message: `${description}: ${error.message}`,
      });
    }
  }
  const operation = record(input.recorded, chosen, executed, blocked, now());
  const requeueAfterMs =
    chosen.step !== null
      ? executed?.outcome.moved !== undefined
        ? 0
        : STEP_POLL_MS
      : chosen.operation !== null
        ? WAIT_POLL_MS
        : (options.idlePollMs ?? 30_000);
  return {
    ...(operation === undefined ? {} : { operation }),
    slotsCovered: chosen.slotsCovered,
    zoneSpread: chosen.zoneSpread,
    ...(blocked === undefined ? {} : { blocked }),
    shardsReady: chosen.shardsReady,
    slotsUncovered: uncoveredSlots(chosen.model),
    replicasInMasterZone: replicasBesideMaster(chosen.model),
    removable: (shard) => removable(chosen.model, shard),
    events,
    ...(executed === undefined ? {} : { executed }),
    ...(error === undefined ? {} : { error }),
    ...(executed?.outcome.incarnation !== undefined
      ? { incarnation: executed.outcome.incarnation }
      : typeof incarnation === 'string'
        ? { incarnation }
        : {}),
    requeueAfterMs,
    plan: chosen,
  };
}

function summary(description: string, outcome: StepOutcome): string {
  const moved = outcome.moved;
  if (moved === undefined) return description;
  const mib = (moved.bytes / 1024 / 1024).toFixed(1);
  const dropped = moved.dropped > 0 ? `, dropped ${moved.dropped} blobs S3 has` : '';
  return `${description}: moved ${moved.slots} slots, ${moved.keys} keys (${mib} MiB) in ${moved.ms} ms${dropped}`;
}

/** The status.operation after this round (startedAt kept while the operation goes on). */
function record(
  previous: RecordedOperation | undefined,
  chosen: Plan,
  executed: MembershipOutcome['executed'],
  blocked: MembershipOutcome['blocked'],
  now: number,
): RecordedOperation | undefined {
  // Healing steps within a larger operation (attaching the replicas of a new cluster, say)
  // are part of it.
  const type: OperationType | null =
    chosen.operation === 'Heal' && previous !== undefined
      ? (previous.type as OperationType)
      : chosen.operation;
  if (type === null) return undefined;
  const startedAt =
    previous?.type === type && previous.startedAt !== undefined
      ? previous.startedAt
      : new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const state: Record<string, unknown> = {};
  const failover = executed?.outcome.failover;
  if (failover !== undefined) {
    state.failover = {
      pod: failover.pod,
      at: new Date(failover.at).toISOString(),
      ...(failover.mode === undefined ? {} : { mode: failover.mode }),
    };
  } else if (previous?.state?.failover !== undefined && chosen.step === null) {
    // Still waiting for the failover asked for earlier.
    state.failover = previous.state.failover;
  }
  const leaving = [
    ...new Set(
      chosen.model.reports
        .map((report) => report.pod.shard)
        .filter((shard) => shard >= chosen.model.spec.shards),
    ),
  ].sort((a, b) => a - b);
  return {
    type,
    step: blocked !== undefined ? 'Blocked' : (chosen.step?.kind ?? 'Wait'),
    startedAt,
    ...(leaving.length > 0 ? { shards: leaving } : {}),
    message:
      blocked?.message ??
      (chosen.step !== null ? describeStep(chosen.step) : (chosen.waiting ?? '')),
    ...(Object.keys(state).length > 0 ? { state } : {}),
  };
}
