import type { Cluster } from 'ioredis';

/** Channel on which DELETEs are announced to every process's in-process hot tier. */
export const INVALIDATION_CHANNEL = 'bc:invalidate';

export async function announceDeletion(redis: Cluster, key: string): Promise<void> {
  await redis.publish(INVALIDATION_CHANNEL, key);
}

/**
 * Calls `onDeleted` for every blob deleted anywhere in the cluster. Runs on its own
 * connection (a subscribed connection can do nothing else). A missed message (connection
 * lost) is covered by the hot tier's TTL.
 */
export async function subscribeDeletions(
  redis: Cluster,
  onDeleted: (key: string) => void,
): Promise<{ close(): Promise<void> }> {
  const subscriber = redis.duplicate();
  subscriber.on('message', (channel: string, key: string) => {
    if (channel === INVALIDATION_CHANNEL) onDeleted(key);
  });
  await subscriber.subscribe(INVALIDATION_CHANNEL);
  return {
    async close() {
      await subscriber.quit();
    },
  };
}
