import { slotCount, type ClusterNode } from './admin.ts';

/** What one Redis pod reported (its CLUSTER NODES), for the drain rule. */
export interface NodeReport {
  pod: string;
  shard: number;
  /** The pod has an IP (its redis-server may have run, and may hold data). */
  started: boolean;
  /** The pod's CLUSTER NODES, or null when it could not be reached. */
  view: ClusterNode[] | null;
}

export interface DrainVerdict {
  drained: boolean;
  /** Why not, for status and logs. */
  reason: string;
}

/**
 * Whether a shard that the spec no longer asks for may be deleted: nothing in it can hold
 * data or still belong to the cluster. True when every one of its pods either never
 * started, or answers and serves no slot, and no pod of the remaining shards still lists
 * it (it was forgotten). A pod that cannot be asked keeps the shard. Pure.
 */
export function shardDrained(shard: number, reports: readonly NodeReport[]): DrainVerdict {
  const own = reports.filter((report) => report.shard === shard && report.started);
  const ids = new Set<string>();
  for (const report of own) {
    if (report.view === null)
      return { drained: false, reason: `pod ${report.pod} cannot be reached to check its slots` };
    const myself = report.view.find((node) => node.flags.includes('myself'));
    if (myself === undefined) continue;
    ids.add(myself.id);
    const slots = slotCount(myself.slots);
    if (slots > 0)
      return { drained: false, reason: `pod ${report.pod} still serves ${slots} slots` };
  }
  for (const report of reports) {
    if (report.shard === shard || report.view === null) continue;
    const known = report.view.find((node) => ids.has(node.id) && !node.flags.includes('myself'));
    if (known !== undefined) {
      return {
        drained: false,
        reason: `pod ${report.pod} still counts ${known.address || known.id} in the cluster`,
      };
    }
  }
  return { drained: true, reason: 'no slots and no cluster membership left' };
}
