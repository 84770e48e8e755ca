/**
 * Every Redis key of a blob carries the hash tag `{<md5>}`, so they all live in one slot
 * on one shard: publishing, deleting and `WAIT` involve a single node.
 */
export const blobKeys = {
  manifest: (md5: string) => `bc:{${md5}}:m`,
  chunk: (md5: string, uploadId: string, index: number) => `bc:{${md5}}:c:${uploadId}:${index}`,
  /** Bumped by every DELETE; operations that started before it refuse to publish. */
  generation: (md5: string) => `bc:{${md5}}:g`,
  /** Held by the one process filling the blob from the durable tier. */
  fillLease: (md5: string) => `bc:{${md5}}:lease`,
  /** The fill under way (holder, generation, upload id): readers anywhere stream behind it. */
  fillRecord: (md5: string) => `bc:{${md5}}:fill`,
  /** Present while the durable tier recently answered "no such blob". */
  absent: (md5: string) => `bc:{${md5}}:absent`,
  /** Uploads of the blob to the durable tier under way (a sorted set: member → expiry). */
  uploads: (md5: string) => `bc:{${md5}}:uploads`,
  /** Present once the durable tier's copy was found damaged: the next upload replaces it. */
  damaged: (md5: string) => `bc:{${md5}}:damaged`,
};

/** A journal partition: its own hash tag, so partitions spread over the shards. */
export function journalStream(partition: number): string {
  return `bc:{journal-${partition}}`;
}

/**
 * The upload marker of a journal entry, in its partition's slot (so it outlives a wipe of
 * the blob's own shard): `streaming` while the upload runs, `published` once the blob is
 * visible. An entry without its marker belongs to an upload that ended without publishing.
 */
export function uploadMarker(partition: number, token: string): string {
  return `bc:{journal-${partition}}:upload:${token}`;
}

/** Keys are uniform (MD5), so a prefix picks a partition evenly. */
export function journalPartitionOf(md5: string, partitions: number): number {
  return Number.parseInt(md5.slice(0, 8), 16) % partitions;
}

/** Identifies the Redis data set; a new id means the cache started cold (see backfill). */
export const INCARNATION_KEY = 'bc:incarnation';

/**
 * Progress of backfill partition `partition` (JSON). The hash tag puts it in the slot of
 * `INCARNATION_KEY`, so the operator reads both from one node.
 */
export function backfillProgressKey(partition: number): string {
  return `bc:{${INCARNATION_KEY}}:backfill:${partition}`;
}
