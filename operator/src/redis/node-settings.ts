/**
 * Settings every Redis node of a cache runs with, beyond what the node start script adds
 * (cluster mode, no persistence, the password): the operator's StatefulSets and the cluster
 * tests start nodes with exactly these.
 */

/** The nodes' cluster-node-timeout in production (the planner's failover grace follows it). */
export const NODE_TIMEOUT_MS = 5_000;

export function clusterNodeArgs(nodeTimeoutMs: number): string[] {
  return [
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // A master emptied by a scale-in would otherwise turn itself into a replica of the node
    // that took its last slot (and full-sync all of that node's data), failing the move's
    // last SETSLOT; replicas also stay with their own shard's StatefulSet.
    '--cluster-allow-replica-migration',
    'no',
    // One shard down (or one slot missing in one node's view) must not stop the others.
    '--cluster-require-full-coverage',
    'no',
    // Clients follow MOVED/ASK and CLUSTER SLOTS to the announced hostname (a pod's stable
    // DNS name), not to an IP that changes when the pod is rescheduled.
    '--cluster-preferred-endpoint-type',
    'hostname',
    // Blob bytes do not compress; LZF in DUMP (MIGRATE) and full syncs only costs CPU.
    '--rdbcompression',
    'no',
  ];
}
