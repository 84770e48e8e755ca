import type { Cluster } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobKeys } from './keys.ts';
import { LuaScript } from './scripts.ts';

/**
 * Takes or renews a lease: a member of the blob's uploads set that expires `ttl` ms from
 * now by the Redis server's clock (so the clocks of the processes never matter). Answers,
 * in the same round trip, what an upload checks at that moment: the blob's generation ('' if
 * none) and whether its durable copy is known damaged (1 or 0).
 * KEYS[1] uploads set, KEYS[2] generation, KEYS[3] damaged marker. ARGV: member, ttl ms.
 */
const TAKE = new LuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('GET', KEYS[2]) or '', redis.call('EXISTS', KEYS[3])}
`);

/** Drops expired leases and counts the others. KEYS[1] uploads set. */
const COUNT = new LuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`);

export interface UploadLease {
  /** The blob's generation when the lease was taken ('' if none). */
  readonly generation: string;
  /** Whether the durable tier's copy was known damaged when the lease was taken. */
  readonly durableCopyDamaged: boolean;
  /** Aborted when the lease could not be renewed or the generation moved (a DELETE came). */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

/**
 * Leases held by uploads of a blob to the durable tier while they run. A DELETE waits
 * until none is held before it removes the durable copy, so an upload that started before
 * the DELETE can never put the object back after it (docs/decisions/0021-delete-sticks.md).
 */
export class UploadLeases {
  private readonly redis: Cluster;
  private readonly ttlMs: number;

  /** @param ttlMs lifetime of a lease not renewed (a dead uploader's); renewed at a third. */
  constructor(redis: Cluster, ttlMs = 6_000) {
    this.redis = redis;
    this.ttlMs = ttlMs;
  }

  /**
   * Takes a lease on `key`'s uploads for the upload of generation `wanted`, and renews it
   * until released. When a renewal finds another generation (a DELETE came), the lease's
   * signal is aborted so the upload stops, and the lease is kept until released.
   */
  async take(key: string, wanted: string): Promise<UploadLease> {
    const member = randomUUID();
    const keys = [blobKeys.uploads(key), blobKeys.generation(key), blobKeys.damaged(key)];
    const renew = async (): Promise<{ generation: string; durableCopyDamaged: boolean }> => {
      const reply = (await TAKE.run(this.redis, keys, [member, this.ttlMs])) as [string, number];
      return { generation: reply[0], durableCopyDamaged: reply[1] === 1 };
    };
    const taken = await renew();
    const aborter = new AbortController();
    const timer = setInterval(() => {
      renew()
        .then(({ generation }) => {
          if (generation !== wanted) aborter.abort(new Error(`Blob ${key} was deleted meanwhile`));
        })
        .catch((error: unknown) => aborter.abort(error));
    }, this.ttlMs / 3);
    return {
      ...taken,
      signal: aborter.signal,
      release: async () => {
        clearInterval(timer);
        await this.redis.zrem(keys[0]!, member);
      },
    };
  }

  /** Resolves once no upload of `key` holds a lease; false if some still do at the deadline. */
  async waitUntilNone(key: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let delay = 10;
    for (;;) {
      const held = (await COUNT.run(this.redis, [blobKeys.uploads(key)], [])) as number;
      if (held === 0) return true;
      if (Date.now() > deadline) return false;
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  }
}
