/**
 * What the operator asks Redis nodes, as an interface: the reconciler takes one (built in
 * main.ts), tests of pure logic pass their own. Every Redis conversation of the operator goes
 * through here: reading a node's view, and the commands of cluster membership (MEET,
 * ADDSLOTSRANGE, REPLICATE, SETSLOT, MIGRATE, FORGET, FAILOVER, RESET).
 *
 * Reads (`clusterNodes`, `inspect`) answer null for a node that cannot be reached; every
 * other method throws a RedisCommandError when a node answers with an error, and an error
 * `isUnreachable` recognises when it cannot be reached.
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
  /** `ip:port` the node announces (`:0` for a node whose address is unknown, flag noaddr). */
  address: string;
  /** The announced hostname, when the node has one. */
  hostname?: string;
  flags: string[];
  /** The master's id for a replica, null for a master. */
  masterId: string | null;
  /** When the answering node last had a reply from it (Unix ms; 0: never or myself). */
  pongReceivedMs?: number;
  configEpoch: number;
  connected: boolean;
  /** Slot ranges it serves, inclusive. */
  slots: [number, number][];
  /** Slots being moved to another node (`[slot->-id]`). */
  migrating: { slot: number; to: string }[];
  /** Slots being received from another node (`[slot-<-id]`). */
  importing: { slot: number; from: string }[];
}

/** A replica as its master's INFO replication lists it. */
export interface ReplicaLink {
  address: string;
  online: boolean;
  offset: number;
}

/** Everything the planner needs to know of one node, read in one round trip. */
export interface NodeInspection {
  /** Its CLUSTER NODES (its own entry carries the flag `myself`). */
  nodes: ClusterNode[];
  /** `cluster_state` as this node sees it. */
  clusterOk: boolean;
  role: 'master' | 'replica';
  /** For a replica: its link to the master is up (`master_link_status:up`). */
  masterLinkUp: boolean;
  /** master_repl_offset (master) or slave_repl_offset (replica). */
  replicationOffset: number;
  /** For a master: its replicas. */
  replicas: ReplicaLink[];
  /** DBSIZE. */
  keys: number;
  usedMemoryBytes: number;
  /** maxmemory (0: no limit). */
  maxMemoryBytes: number;
}

export type SlotState = 'IMPORTING' | 'MIGRATING' | 'NODE' | 'STABLE';

export interface MigrateOptions {
  /** MIGRATE's timeout: the longest the transfer may stay idle, not its total. */
  timeoutMs: number;
  /** The target's password (AUTH), when it has one. */
  password?: string;
}

export interface RedisAdmin {
  /**
   * CLUSTER NODES as `node` sees it (its own entry carries the flag `myself`), or null when
   * the node cannot be reached (connection refused, reset or timed out). Any other failure
   * (a wrong password, a node without cluster mode) throws.
   */
  clusterNodes(node: RedisEndpoint): Promise<ClusterNode[] | null>;
  /** CLUSTER NODES, INFO and DBSIZE of a node at once; null when it cannot be reached. */
  inspect(node: RedisEndpoint): Promise<NodeInspection | null>;
  /**
   * How far the node is in its replication stream (INFO replication: master_repl_offset on
   * a master, slave_repl_offset on a replica); null when it cannot be reached.
   */
  replicationOffset(node: RedisEndpoint): Promise<number | null>;
  /** CLUSTER MEET: `node` shakes hands with the node at `peer` (an IP, not a name). */
  meet(node: RedisEndpoint, peer: { ip: string; port: number }): Promise<void>;
  /** CLUSTER ADDSLOTSRANGE on a node that owns none of them. */
  addSlots(node: RedisEndpoint, ranges: readonly [number, number][]): Promise<void>;
  /** CLUSTER BUMPEPOCH: a new config epoch, so slots a node claimed win over stale claims. */
  bumpEpoch(node: RedisEndpoint): Promise<void>;
  /** CLUSTER REPLICATE: the node becomes a replica of the master with this id. */
  replicate(node: RedisEndpoint, masterId: string): Promise<void>;
  /**
   * CLUSTER SETSLOT for each slot, pipelined. Answers, per slot, null when the node accepted
   * it or the error it answered (callers decide which errors mean "already done").
   */
  setSlots(
    node: RedisEndpoint,
    slots: readonly number[],
    state: SlotState,
    nodeId?: string,
  ): Promise<(string | null)[]>;
  /** CLUSTER COUNTKEYSINSLOT for each slot, pipelined. */
  countKeysInSlots(node: RedisEndpoint, slots: readonly number[]): Promise<number[]>;
  /** CLUSTER GETKEYSINSLOT: up to `count` key names (as bytes) of a slot on this node. */
  keysInSlot(node: RedisEndpoint, slot: number, count: number): Promise<Buffer[]>;
  /** MEMORY USAGE of each key, pipelined (0 for a key that is gone). */
  memoryUsage(node: RedisEndpoint, keys: readonly Buffer[]): Promise<number[]>;
  /**
   * MIGRATE the keys (all of one slot) from `source` to `target`, replacing what the target
   * holds under their names. Resolves once the target has them and the source dropped them.
   */
  migrate(
    source: RedisEndpoint,
    target: { host: string; port: number },
    keys: readonly Buffer[],
    options: MigrateOptions,
  ): Promise<void>;
  /**
   * Drops a blob whose manifest says the durable tier has it (state `cached`): its manifest
   * and the chunks the manifest names, atomically with the check. Answers whether it did.
   */
  dropCachedBlob(node: RedisEndpoint, manifestKey: Buffer): Promise<boolean>;
  /** CLUSTER FORGET; a node that does not know the id counts as done. */
  forget(node: RedisEndpoint, id: string): Promise<void>;
  /** CLUSTER FAILOVER on a replica (default: the coordinated manual failover). */
  failover(node: RedisEndpoint, mode?: 'FORCE' | 'TAKEOVER'): Promise<void>;
  /**
   * CLUSTER RESET HARD (after FLUSHALL on a master holding keys): the node forgets every
   * other node, drops its data and gets a new id.
   */
  reset(node: RedisEndpoint): Promise<void>;
  /** GET of a string key on this very node (no redirection followed); null when absent. */
  get(node: RedisEndpoint, key: string): Promise<string | null>;
  /**
   * SET key value NX on this node, then WAIT for `replicas` replicas (up to `timeoutMs`).
   * Answers the value the key holds afterwards and how many replicas acknowledged it.
   */
  setIfAbsent(
    node: RedisEndpoint,
    key: string,
    value: string,
    wait: { replicas: number; timeoutMs: number },
  ): Promise<{ value: string; acknowledged: number }>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** An error a Redis node answered to a command (not a connection failure). */
export class RedisCommandError extends Error {
  readonly node: string;
  readonly command: string;
  constructor(node: string, command: string, message: string, options?: ErrorOptions) {
    super(`Redis ${node} refused ${command}: ${message}`, options);
    this.name = 'RedisCommandError';
    this.node = node;
    this.command = command;
  }
}

/** Number of slots in the given ranges. */
export function slotCount(ranges: readonly [number, number][]): number {
  return ranges.reduce((sum, [first, last]) => sum + last - first + 1, 0);
}
