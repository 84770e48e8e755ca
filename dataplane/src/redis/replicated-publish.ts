import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import { GroupCommit } from '../group-commit.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { replicasConfirmed, type ReplicaPresence } from './replica-presence.ts';
import { REDIRECTED } from './cluster-pipeline.ts';
import { PUBLISH } from './scripts.ts';

/** One publish script call and how long its blob may take to reach a replica. */
export interface PublishCall {
  keys: string[];
  args: (string | number)[];
  waitMs: number;
  /** Told as soon as the script's reply says it published (before the replica answered). */
  onPublished?: () => void;
}

/**
 * The script's reply, and how many replicas confirmed every write before it (null: no
 * replica to ask; an Error: the wait itself failed, after the script ran).
 */
export interface PublishReply {
  code: number;
  replicas: number | null | Error;
}

interface BatchReply {
  code: number | Error;
  replicas: number | Error | null;
}

const REDIRECT_ATTEMPTS = 30;
const REDIRECT_DELAY_MS = 300;

/**
 * Runs the publish script with the replica wait in one round trip: a pipeline of the
 * scripts, then one `WAIT`, on the shard's master connection. `WAIT` confirms every write
 * made earlier on its connection, so uploads to one shard that publish while another
 * batch waits share the next `WAIT` (group commit, docs/decisions/0081): a `WAIT` blocks
 * the whole connection, so one per upload would also hold up every other command of this
 * process to that shard.
 */
export class ReplicatedPublishes {
  private readonly redis: Cluster;
  private readonly batches: GroupCommit<PublishCall, BatchReply>;
  private readonly replicaPresence: ReplicaPresence;

  constructor(redis: Cluster, replicaPresence: ReplicaPresence) {
    this.redis = redis;
    this.replicaPresence = replicaPresence;
    this.batches = new GroupCommit({ run: (_nodes, calls) => this.runBatch(calls) });
  }

  /** Batches sent so far (each with at most one `WAIT`). */
  get batchCount(): number {
    return this.batches.batches;
  }

  async publish(call: PublishCall): Promise<PublishReply> {
    const nodes = this.nodesOf(call);
    if (nodes === undefined) return this.publishAlone(call);
    const reply = await this.batches.submit(nodes.join(';'), call);
    if (reply.code instanceof Error) {
      // Redirected before it ran (a failover or a slot move): alone, with redirections followed.
      if (REDIRECTED.test(reply.code.message)) return this.publishAlone(call);
      throw reply.code;
    }
    return { code: reply.code, replicas: reply.replicas };
  }

  private nodesOf(call: PublishCall): string[] | undefined {
    const [first] = call.keys;
    return first === undefined ? undefined : this.redis.slots[calculateSlot(first)];
  }

  /**
   * One pipeline for the whole batch: ioredis sends it to one master when every slot in it
   * is served by the same nodes, which is what the batch's group key says.
   */
  private async runBatch(calls: readonly PublishCall[]): Promise<BatchReply[]> {
    const first = calls[0];
    const nodes = first === undefined ? undefined : this.nodesOf(first);
    if (nodes === undefined) throw new Error('The shard of the batch is not known any more');
    const waits = await this.replicaPresence.shardHasReplica(nodes);
    const pipeline = PUBLISH.pipeline(this.redis);
    for (const call of calls) {
      PUBLISH.queue(pipeline, call.keys, call.args, (error, code) => {
        if (error === null && code === 1) call.onPublished?.();
      });
    }
    if (waits) pipeline.wait(1, Math.max(...calls.map((call) => call.waitMs)));
    const results = (await pipeline.exec()) ?? [];
    const replicas = replicasConfirmed(results[calls.length], waits);
    return calls.map((_, index) => {
      const [error, code] = results[index] ?? [new Error('No reply to the publish script')];
      return { code: error ?? (code as number), replicas };
    });
  }

  /**
   * One call in its own pipeline, sent again while the cluster redirects it (it did not run
   * then; ioredis reports redirections per command in a pipeline).
   */
  private async publishAlone(call: PublishCall): Promise<PublishReply> {
    for (let attempt = 1; ; attempt++) {
      const waits = await this.replicaPresence.shardHasReplica(this.nodesOf(call) ?? []);
      const pipeline = PUBLISH.queue(PUBLISH.pipeline(this.redis), call.keys, call.args);
      if (waits) pipeline.wait(1, call.waitMs);
      const [published, wait] = (await pipeline.exec()) ?? [];
      const [error, code] = published ?? [new Error('No reply to the publish script')];
      if (error !== null && REDIRECTED.test(error.message) && attempt < REDIRECT_ATTEMPTS) {
        await sleep(REDIRECT_DELAY_MS);
        continue;
      }
      if (error !== null) throw error;
      if (code === 1) call.onPublished?.();
      const replicas = !waits ? null : (wait?.[0] ?? (wait?.[1] as number));
      return { code: code as number, replicas };
    }
  }
}
