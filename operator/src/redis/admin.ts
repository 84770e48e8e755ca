/**
 * What the operator asks Redis nodes, as an interface: the reconciler takes one (built in
 * main.ts), tests pass their own. Every Redis conversation of the operator goes through
 * here; cluster membership adds its commands (MEET, ADDSLOTSRANGE, REPLICATE, SETSLOT,
 * MIGRATE, FORGET, FAILOVER) to this seam.
 */

/** A Redis node to talk to (a pod's address). */
export interface RedisEndpoint {
  host: string;
  port: number;
  password?: string;
}

/** One line of CLUSTER NODES: how the answering node sees a member of the cluster. */
export interface ClusterNode {
  id: string;
  /** `ip:port` the node announces (may be empty for a node not yet met). */
  address: string;
  /** The announced hostname, when the node has one. */
  hostname?: string;
  flags: string[];
  /** The master's id for a replica, null for a master. */
  masterId: string | null;
  configEpoch: number;
  connected: boolean;
  /** Slot ranges it serves, inclusive. */
  slots: [number, number][];
  /** Slots being moved to another node (`[slot->-id]`). */
  migrating: { slot: number; to: string }[];
  /** Slots being received from another node (`[slot-<-id]`). */
  importing: { slot: number; from: string }[];
}

export interface RedisAdmin {
  /**
   * CLUSTER NODES as `node` sees it (its own entry carries the flag `myself`), or null when
   * the node cannot be reached (connection refused, reset or timed out). Any other failure
   * (a wrong password, a node without cluster mode) throws.
   */
  clusterNodes(node: RedisEndpoint): Promise<ClusterNode[] | null>;
  /** GET of a string key on this very node (no redirection followed); null when absent. */
  get(node: RedisEndpoint, key: string): Promise<string | null>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** Number of slots in the given ranges. */
export function slotCount(ranges: readonly [number, number][]): number {
  return ranges.reduce((sum, [first, last]) => sum + last - first + 1, 0);
}
