import type { Cluster } from 'ioredis';

/** How long a master's `ROLE` answer is trusted. */
const ROLE_MEMORY_MS = 1_000;

/**
 * Whether a shard's master has a replica a write must wait for. The client's slot map
 * alone cannot say no: Redis leaves a replica out of `CLUSTER SLOTS` until it has
 * replicated something, and the map is refreshed every few seconds; trusting it would
 * acknowledge writes with no replica's confirmation just after one attached. So a master
 * the map lists alone is asked (`ROLE`, remembered for a second).
 */
export class ReplicaPresence {
  private readonly redis: Cluster;
  /** Masters the slot map lists alone, and whether `ROLE` showed them a replica. */
  private readonly roles = new Map<string, { replicas: boolean; at: number }>();

  constructor(redis: Cluster) {
    this.redis = redis;
  }

  /** For the nodes the slot map lists for a slot, master first. */
  async shardHasReplica(nodes: readonly string[]): Promise<boolean> {
    const [master] = nodes;
    // No map yet (the cluster is not ready): wait, as if there were a replica.
    if (nodes.length >= 2 || master === undefined) return true;
    const known = this.roles.get(master);
    if (known !== undefined && Date.now() - known.at < ROLE_MEMORY_MS) return known.replicas;
    const node = this.redis
      .nodes('master')
      .find(({ options }) => `${options.host}:${options.port}` === master);
    // An unknown master is about to be replaced in the map: wait as if it had a replica.
    if (node === undefined) return true;
    const role = (await node.role()) as [string, number, unknown[]?];
    const replicas = role[0] === 'master' && (role[2]?.length ?? 0) > 0;
    this.roles.set(master, { replicas, at: Date.now() });
    return replicas;
  }

  async slotHasReplica(slot: number): Promise<boolean> {
    return this.shardHasReplica(this.redis.slots[slot] ?? []);
  }
}

/**
 * What a pipeline's `WAIT` reply says: the replicas that confirmed every earlier write on
 * the connection, null when no `WAIT` was sent (the shard has no replica), or the error
 * (also when the reply is missing).
 */
export function replicasConfirmed(
  reply: [Error | null, unknown] | undefined,
  asked: boolean,
): number | null | Error {
  if (!asked) return null;
  if (reply === undefined) return new Error('No reply to WAIT');
  return reply[0] ?? (reply[1] as number);
}
