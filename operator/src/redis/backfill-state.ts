import calculateSlot from 'cluster-key-slot';
import type { ClusterNode, RedisAdmin, RedisEndpoint } from './admin.ts';

/**
 * Identifies the Redis data set; written when the cluster is created, so a new id means the
 * cache started cold (the data plane's INCARNATION_KEY).
 */
export const INCARNATION_KEY = 'bc:incarnation';

/** Where backfill pod `partition` writes its progress (the data plane's backfillProgressKey). */
export function backfillProgressKey(partition: number): string {
  return `bc:{${INCARNATION_KEY}}:backfill:${partition}`;
}

/**
 * What one backfill pod writes into Redis (`bc:{bc:incarnation}:backfill:<partition>`, JSON;
 * the data plane's `BackfillReport`): the fields the operator reads.
 */
export interface PartitionReport {
  incarnation: string;
  partition: number;
  state: 'listing' | 'loading' | 'done' | 'failed';
  blobsTotal: number;
  bytesTotal: number;
  blobs: number;
  bytes: number;
  blobsSkipped: number;
  bytesPerSecond: number;
  secondsLeft: number | null;
  error?: string;
  /** The Job whose pod wrote it (absent from pods of Jobs made before reruns existed). */
  run?: string;
}

/** What the backfill phase reads from Redis. */
export interface BackfillState {
  /** undefined: no node could be asked; null: the cluster holds no incarnation (yet). */
  incarnation: string | null | undefined;
  /** The reports of `partitions` pods that name this incarnation. */
  reports: PartitionReport[];
}

/**
 * The master serving the slot of `key` in `view`, as an endpoint (the asking node's own when
 * it is that master); null when no master serves it, undefined when the slot is on the move
 * (its owner could answer "absent" for a key already moved).
 */
function ownerOf(
  view: ClusterNode[],
  key: string,
  asked: RedisEndpoint,
): RedisEndpoint | null | undefined {
  const slot = calculateSlot(key);
  const owner = view.find(
    (node) =>
      node.masterId === null &&
      !node.flags.includes('fail') &&
      node.slots.some(([first, last]) => first <= slot && slot <= last),
  );
  if (owner === undefined) return null;
  if (owner.migrating.some((move) => move.slot === slot)) return undefined;
  if (owner.flags.includes('myself')) return asked;
  const at = owner.address.lastIndexOf(':');
  const host = owner.address.slice(0, at);
  const port = Number(owner.address.slice(at + 1));
  if (host === '' || !(port > 0)) return null;
  return { host, port, ...(asked.password === undefined ? {} : { password: asked.password }) };
}

function parseReport(text: string | null, incarnation: string): PartitionReport | null {
  if (text === null) return null;
  try {
    const report = JSON.parse(text) as PartitionReport;
    return report.incarnation === incarnation && typeof report.bytes === 'number' ? report : null;
  } catch {
    return null;
  }
}

/**
 * Reads the incarnation id and the backfill pods' progress from the master of their slot
 * (the reports share the incarnation key's slot), found through the first Redis node that
 * answers. Redis trouble reads as "could not be asked".
 */
export async function readBackfillState(
  admin: RedisAdmin,
  nodes: readonly RedisEndpoint[],
  partitions: number,
): Promise<BackfillState> {
  for (const node of nodes) {
    const view = await admin.clusterNodes(node).catch(() => null);
    if (view === null) continue;
    const owner = ownerOf(view, INCARNATION_KEY, node);
    if (owner === undefined) return { incarnation: undefined, reports: [] };
    if (owner === null) return { incarnation: null, reports: [] };
    try {
      const incarnation = await admin.get(owner, INCARNATION_KEY);
      if (incarnation === null) return { incarnation, reports: [] };
      const texts = await Promise.all(
        Array.from({ length: partitions }, (_, partition) =>
          admin.get(owner, backfillProgressKey(partition)),
        ),
      );
      const reports = texts
        .map((text) => parseReport(text, incarnation))
        .filter((report) => report !== null);
      return { incarnation, reports };
    } catch {
      continue;
    }
  }
  return { incarnation: undefined, reports: [] };
}
