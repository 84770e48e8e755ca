/**
 * The operator's membership loop for the cluster tests: the very function the membership
 * phase calls each reconcile (reconcileMembership: the planner and the executor over the
 * ioredis RedisAdmin), fed with the loopback pods instead of Pods from the API server, its
 * status.operation kept between rounds as the BlobCache status keeps it.
 */
import type { RedisAdmin } from '../../operator/src/redis/admin.ts';
import { makeRedisAdmin } from '../../operator/src/redis/ioredis-admin.ts';
import {
  reconcileMembership,
  type MembershipOptions,
  type MembershipOutcome,
  type RecordedOperation,
} from '../../operator/src/redis/membership.ts';
import type { MembershipSpec, RedisPod } from '../../operator/src/redis/model.ts';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where the Redis pods are (a LoopbackRedis, or a fixed list in another process). */
export interface PodSource {
  records(): RedisPod[];
  readonly password: string;
  readonly nodeTimeoutMs: number;
}

export interface Round {
  at: number;
  operation?: string;
  step?: string;
  description?: string;
  waiting?: string | null;
  error?: string;
  outcome: MembershipOutcome;
}

export class TestOperator {
  readonly admin: RedisAdmin;
  readonly loopback: PodSource;
  spec: MembershipSpec;
  recorded: RecordedOperation | undefined;
  readonly rounds: Round[] = [];
  private readonly options: MembershipOptions;

  constructor(loopback: PodSource, spec: MembershipSpec, options: MembershipOptions = {}) {
    this.loopback = loopback;
    this.spec = spec;
    this.options = options;
    this.admin = makeRedisAdmin({ timeoutMs: 3_000 });
  }

  /** One reconcile of membership. */
  async round(): Promise<MembershipOutcome> {
    const outcome = await reconcileMembership(
      this.admin,
      {
        spec: this.spec,
        pods: this.loopback.records(),
        password: this.loopback.password,
        nodeTimeoutMs: this.loopback.nodeTimeoutMs,
        ...(this.recorded === undefined ? {} : { recorded: this.recorded }),
      },
      this.options,
    );
    this.recorded = outcome.operation;
    this.rounds.push({
      at: Date.now(),
      ...(outcome.operation === undefined ? {} : { operation: outcome.operation.type }),
      ...(outcome.executed === undefined
        ? {}
        : { step: outcome.executed.kind, description: outcome.executed.description }),
      waiting: outcome.plan.waiting,
      ...(outcome.error === undefined ? {} : { error: outcome.error.message }),
      outcome,
    });
    return outcome;
  }

  /**
   * Reconciles until membership has nothing left to do (no operation, no step), as the
   * controller would with the requeue delays it is given; fails after `timeoutMs` or
   * `maxRounds`, with the last rounds in the message.
   */
  async converge(options: { timeoutMs?: number; maxRounds?: number } = {}): Promise<Round[]> {
    const { timeoutMs = 120_000, maxRounds = 2_000 } = options;
    const first = this.rounds.length;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const outcome = await this.round();
      if (
        outcome.operation === undefined &&
        outcome.executed === undefined &&
        outcome.error === undefined
      )
        return this.rounds.slice(first);
      if (Date.now() > deadline || this.rounds.length - first >= maxRounds) {
        const last = this.rounds
          .slice(-5)
          .map((round) => round.error ?? round.description ?? round.waiting ?? '')
          .join(' | ');
        throw new Error(`Membership did not converge: ${last}`);
      }
      // A failed round is retried with a delay, as the work queue's back-off would.
      await sleep(outcome.error !== undefined ? 500 : outcome.requeueAfterMs);
    }
  }

  async close(): Promise<void> {
    await this.admin.close();
  }
}
