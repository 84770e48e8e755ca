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
  /** Present while the durable tier recently answered "no such blob". */
  absent: (md5: string) => `bc:{${md5}}:absent`,
};

/** A journal partition: its own hash tag, so partitions spread over the shards. */
export function journalStream(partition: number): string {
  return `bc:{journal-${partition}}`;
}

/** Keys are uniform (MD5), so a prefix picks a partition evenly. */
export function journalPartitionOf(md5: string, partitions: number): number {
  return Number.parseInt(md5.slice(0, 8), 16) % partitions;
}

/** Identifies the Redis data set; a new id means the cache started cold (see backfill). */
export const INCARNATION_KEY = 'bc:incarnation';
