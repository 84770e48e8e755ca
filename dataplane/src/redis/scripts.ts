import type { ChainableCommander, Cluster } from 'ioredis';
import { createHash } from 'node:crypto';

type ScriptCall = (numberOfKeys: number, ...keysAndArgs: (string | number)[]) => unknown;
type PipelinedCall = (
  numberOfKeys: number,
  ...keysArgsAndCallback: (string | number | ((error: Error | null, reply: unknown) => void))[]
) => unknown;

/**
 * A Lua script defined on the client with ioredis's `defineCommand`: ioredis sends `EVAL`
 * the first time on each connection and `EVALSHA` after, re-sending the text on `NOSCRIPT`
 * (a node restarted or failed over), and the command also works inside a pipeline.
 */
export class LuaScript {
  private readonly name: string;
  private readonly source: string;

  constructor(source: string) {
    // Named by its text, so two scripts can never take each other's name on a client.
    this.name = `bcScript${createHash('sha1').update(source).digest('hex').slice(0, 12)}`;
    this.source = source;
  }

  /** Defines the command on `redis` once (pipelines made afterwards know it too). */
  private command(redis: Cluster): ScriptCall {
    const commands = redis as unknown as Record<string, ScriptCall | undefined>;
    if (commands[this.name] === undefined) redis.defineCommand(this.name, { lua: this.source });
    return (commands[this.name] as ScriptCall).bind(redis);
  }

  async run(
    redis: Cluster,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return await this.command(redis)(keys.length, ...keys, ...args);
  }

  /** A pipeline of `redis` that knows this script (and every script defined before). */
  pipeline(redis: Cluster): ChainableCommander {
    this.command(redis);
    return redis.pipeline();
  }

  /**
   * Queues a call in a pipeline made by `pipeline`; `onReply` learns this call's reply as
   * soon as it arrives, before the rest of the pipeline's.
   */
  queue(
    pipeline: ChainableCommander,
    keys: readonly string[],
    args: readonly (string | number)[],
    onReply?: (error: Error | null, reply: unknown) => void,
  ): ChainableCommander {
    const call = (pipeline as unknown as Record<string, PipelinedCall | undefined>)[this.name];
    if (call === undefined) throw new Error(`Script ${this.name} is not defined on the pipeline`);
    if (onReply === undefined) call.call(pipeline, keys.length, ...keys, ...args);
    else call.call(pipeline, keys.length, ...keys, ...args, onReply);
    return pipeline;
  }
}

/**
 * Lua scripts run atomically on the shard that owns a blob (all KEYS share its hash tag).
 * KEYS[1] manifest, KEYS[2] generation, KEYS[3] absent marker, KEYS[4..] chunks.
 */

/**
 * Publishes staged chunks by writing the manifest last. Returns 1 published, 0 already
 * published by someone else, -1 deleted since the caller started, -2 a staged chunk is gone.
 * ARGV: expected generation, size, chunk bytes, chunk count, upload id, state, sha256,
 * ttl ms (0: none), persist token (the journal entry that may mark it cached; '' if none).
 */
export const PUBLISH = new LuaScript(`
local gen = redis.call('GET', KEYS[2]) or ''
if gen ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 4, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -2 end
end
local ttl = tonumber(ARGV[8])
for i = 4, #KEYS do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
redis.call('HSET', KEYS[1], 'size', ARGV[2], 'chunk', ARGV[3], 'n', ARGV[4], 'up', ARGV[5], 'state', ARGV[6], 'sha', ARGV[7], 'p', ARGV[9])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('DEL', KEYS[3])
return 1
`);

/**
 * Marks a pending blob as persisted in the durable tier and makes it evictable (TTL), if
 * no DELETE came since the caller read the generation and the caller's journal entry is
 * still the one responsible for it (manifests written before persist tokens existed accept
 * any); records the SHA-256 the durable tier knows for it when the manifest has none (only
 * when it marks: an entry refused here leaves the manifest as it was, and the entry that
 * persists it reports the SHA-256 again when it finds the object).
 * Returns 1 done, -1 deleted since (the generation moved), 0 the manifest changed, is gone
 * or another entry persists it. ARGV: upload id, ttl ms, persist token, generation,
 * SHA-256 ('' if unknown).
 */
export const MARK_CACHED = new LuaScript(`
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return -1 end
if redis.call('HGET', KEYS[1], 'up') ~= ARGV[1] then return 0 end
local token = redis.call('HGET', KEYS[1], 'p')
if token and token ~= '' and token ~= ARGV[3] then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'cached')
local sha = redis.call('HGET', KEYS[1], 'sha')
if ARGV[5] ~= '' and not (sha and sha ~= '') then redis.call('HSET', KEYS[1], 'sha', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], ttl)
for i = 4, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
return 1
`);

/**
 * Deletes a blob: bumps the generation (a tombstone for operations under way), then drops
 * the manifest and the chunks it names. ARGV: upload id seen by the caller ('' if none),
 * generation ttl ms. Returns 1 deleted, 0 nothing published, -1 the manifest changed (retry).
 */
export const DELETE = new LuaScript(`
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local up = redis.call('HGET', KEYS[1], 'up')
if not up then return 0 end
if up ~= ARGV[1] then return -1 end
redis.call('DEL', KEYS[1])
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
`);

/**
 * Makes a published blob pending again (no TTL, so never evicted) under a new persist
 * token: the durable tier lost its copy, and only the new journal entry may mark it cached.
 * Returns 1 done, 0 no such manifest, -1 the manifest changed (retry).
 * ARGV: upload id seen by the caller, new persist token.
 */
export const RESTORE_PENDING = new LuaScript(`
local up = redis.call('HGET', KEYS[1], 'up')
if not up then return 0 end
if up ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'state', 'pending', 'p', ARGV[2])
redis.call('PERSIST', KEYS[1])
for i = 4, #KEYS do redis.call('PERSIST', KEYS[i]) end
return 1
`);

/**
 * Drops a cached copy found broken (a chunk gone), if it is still the copy the caller read;
 * unlike DELETE it leaves the generation alone, so uploads under way are not cancelled.
 * ARGV: upload id seen by the caller. Returns 1 dropped, 0 not that copy any more.
 */
export const DROP_COPY = new LuaScript(`
if redis.call('HGET', KEYS[1], 'up') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
`);

/**
 * Records the SHA-256 of a published blob that had none, once its copy was found to hash
 * to it. ARGV: upload id seen by the caller, base64 SHA-256. Returns 1 recorded, 0 not.
 */
export const RECORD_SHA256 = new LuaScript(`
if redis.call('HGET', KEYS[1], 'up') ~= ARGV[1] then return 0 end
local sha = redis.call('HGET', KEYS[1], 'sha')
if sha and sha ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'sha', ARGV[2])
return 1
`);

/** Releases a fill lease only if the caller still holds it. ARGV: owner token. */
export const RELEASE_LEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);
