import type { Cluster } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

/** Channel on which DELETEs are announced to every process's in-process hot tier. */
export const INVALIDATION_CHANNEL = 'bc:invalidate';

/** Each announcement's confirmations: a set of the processes that dropped the blob. */
function ackKey(nonce: string): string {
  return `bc:{invalidation}:ack:${nonce}`;
}

const ACK_TTL_MS = 60_000;

export interface AnnounceOutcome {
  /** Processes subscribed when the announcement went out. */
  subscribers: number;
  /** Processes that confirmed they dropped the blob before the deadline. */
  confirmed: number;
}

/**
 * Tells every process that `key` was deleted, and waits (up to `timeoutMs`) until each
 * subscribed process confirms it dropped its in-process copy, so that a read arriving
 * anywhere after the DELETE's answer cannot be served from a hot tier.
 */
export async function announceDeletion(
  redis: Cluster,
  key: string,
  options: { timeoutMs: number; pollMs?: number },
): Promise<AnnounceOutcome> {
  const nonce = randomUUID();
  // Subscribers are counted per node: a process subscribes through one node of the cluster.
  const counts = await Promise.all(
    redis.nodes('all').map(async (node) => {
      const reply = (await node.pubsub('NUMSUB', INVALIDATION_CHANNEL).catch(() => [])) as [
        string,
        number,
      ];
      return Number(reply[1] ?? 0);
    }),
  );
  const subscribers = counts.reduce((sum, count) => sum + count, 0);
  await redis.publish(INVALIDATION_CHANNEL, `${key} ${nonce}`);
  const deadline = Date.now() + options.timeoutMs;
  let confirmed = 0;
  while (subscribers > 0) {
    confirmed = await redis.scard(ackKey(nonce));
    if (confirmed >= subscribers || Date.now() > deadline) break;
    await sleep(options.pollMs ?? 5);
  }
  return { subscribers, confirmed };
}

export interface DeletionFeed {
  close(): Promise<void>;
}

/**
 * Calls `onDeleted` for every blob deleted anywhere in the cluster, then confirms it to the
 * announcer. Runs on its own connection (a subscribed connection can do nothing else); the
 * confirmation goes through `redis`. `onError` hears of the subscriber's connection trouble.
 */
export async function subscribeDeletions(
  redis: Cluster,
  options: {
    consumer: string;
    onDeleted: (key: string) => void;
    onError: (error: Error) => void;
  },
): Promise<DeletionFeed> {
  const subscriber = redis.duplicate();
  subscriber.on('error', options.onError);
  subscriber.on('message', (channel: string, message: string) => {
    if (channel !== INVALIDATION_CHANNEL) return;
    const [key, nonce] = message.split(' ');
    if (key === undefined || key === '') return;
    options.onDeleted(key);
    if (nonce === undefined) return;
    redis
      .pipeline()
      .sadd(ackKey(nonce), options.consumer)
      .pexpire(ackKey(nonce), ACK_TTL_MS)
      .exec()
      .catch(options.onError);
  });
  await subscriber.subscribe(INVALIDATION_CHANNEL);
  return {
    async close() {
      await subscriber.quit();
    },
  };
}
