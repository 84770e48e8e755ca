import type { Cluster } from 'ioredis';
import { execPipeline } from './cluster-pipeline.ts';
import { blobKeys } from './keys.ts';
import { LuaScript, RELEASE_LEASE } from './scripts.ts';

/**
 * A fill under way, as every process sees it in Redis (`bc:{K}:fill`): enough to stream
 * behind it from its staged chunks (`bc:{K}:c:<uploadId>:<i>`).
 */
export interface FillRecord {
  key: string;
  /** The fill lease holder running it. */
  holder: string;
  /** The blob's generation when the fill started: a DELETE since makes the record stale. */
  generation: string;
  /** How long the fill's lease lasts unless renewed (a third of it between renewals). */
  leaseMs: number;
  size: number;
  chunkBytes: number;
  uploadId: string;
  sha256?: string;
  /** `running`; `done` once its bytes matched the key (and it published or was refused); `failed`. */
  state: 'running' | 'done' | 'failed';
}

/** What a reader looking for a blob absent from Redis learns in one round trip. */
export interface FillLookup {
  /** The reader took the fill lease in the same round trip (see `lookupOrAcquire`). */
  acquired: boolean;
  /** A manifest exists: the blob is cached after all. */
  cached: boolean;
  generation: string;
  knownAbsent: boolean;
  /** Who holds the fill lease, if anyone. */
  leaseHolder: string | null;
  record: FillRecord | null;
}

/** What a process following a fill elsewhere learns per poll. */
export interface FillPoll {
  /** The chunk asked about: its bytes, `true` if present (not fetched), null when not there yet. */
  chunk: Buffer | true | null;
  state: FillRecord['state'] | null;
  leaseHolder: string | null;
  /** Upload id of the published manifest, if any. */
  publishedUploadId: string | null;
}

/** Renewal outcomes: still held (or taken back), held by another fill, fenced by a DELETE. */
export type RenewOutcome = 'held' | 'taken' | 'deleted';

/**
 * Renews (or takes back, if it expired unclaimed) the fill lease and the record's expiry,
 * unless a DELETE changed the generation. KEYS: lease, record, generation. ARGV: holder,
 * ttl ms, generation seen at the start. Returns 1 held, 0 another holder, -1 deleted.
 */
const RENEW_FILL = new LuaScript(`
if (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then return -1 end
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`);

/**
 * Records how a fill ended, then lets go of its lease, so a process that sees the lease
 * gone already sees the outcome. KEYS: lease, record. ARGV: holder, state, record ttl ms.
 */
const END_FILL = new LuaScript(`
if redis.call('HGET', KEYS[2], 'h') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'state', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`);

/**
 * A reader's look at a blob absent from Redis; it takes the fill lease if the blob is
 * neither cached nor known absent and nobody holds it, so finding and starting a fill cost
 * one round trip, and the generation returned is read under the lease. KEYS: manifest,
 * generation, absent, lease, record. ARGV: holder, ttl ms. Returns cached (0/1),
 * generation, known absent (0/1), acquired (0/1), lease holder ('' for none), record
 * fields (flat); no nil, which would cut a Lua array short.
 */
const LOOKUP_OR_ACQUIRE = new LuaScript(`
local cached = redis.call('EXISTS', KEYS[1])
local generation = redis.call('GET', KEYS[2]) or ''
local absent = redis.call('EXISTS', KEYS[3])
local acquired = 0
if cached == 0 and absent == 0 and redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2], 'NX') then
  acquired = 1
end
return {cached, generation, absent, acquired, redis.call('GET', KEYS[4]) or '', redis.call('HGETALL', KEYS[5])}
`);

const RENEW_CODES: Record<number, RenewOutcome> = { 1: 'held', 0: 'taken', [-1]: 'deleted' };

/** The fill lease and fill records of blobs in Redis (all in the blob's own slot). */
export class FillRecords {
  private readonly redis: Cluster;

  constructor(redis: Cluster) {
    this.redis = redis;
  }

  /**
   * Looks for the blob and any fill of it, taking the fill lease for `holder` when the blob
   * is neither cached nor known absent and the lease is free (`acquired`).
   */
  async lookupOrAcquire(key: string, holder: string, ttlMs: number): Promise<FillLookup> {
    const reply = (await LOOKUP_OR_ACQUIRE.run(
      this.redis,
      [
        blobKeys.manifest(key),
        blobKeys.generation(key),
        blobKeys.absent(key),
        blobKeys.fillLease(key),
        blobKeys.fillRecord(key),
      ],
      [holder, ttlMs],
    )) as [number, string, number, number, string, string[]];
    const [cached, generation, absent, acquired, lease, fields] = reply;
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    return {
      acquired: acquired === 1,
      cached: cached === 1,
      generation,
      knownAbsent: absent === 1,
      leaseHolder: lease === '' ? null : lease,
      record: recordOf(key, record),
    };
  }

  async release(key: string, holder: string): Promise<void> {
    await RELEASE_LEASE.run(this.redis, [blobKeys.fillLease(key)], [holder]);
  }

  /** Makes a fill visible to other processes, expiring with its lease unless renewed. */
  async announce(record: FillRecord, ttlMs: number): Promise<void> {
    const recordKey = blobKeys.fillRecord(record.key);
    await execPipeline(() =>
      this.redis
        .pipeline()
        .hset(recordKey, {
          h: record.holder,
          g: record.generation,
          ttl: record.leaseMs,
          size: record.size,
          chunk: record.chunkBytes,
          up: record.uploadId,
          sha: record.sha256 ?? '',
          state: record.state,
        })
        .pexpire(recordKey, ttlMs),
    );
  }

  async renew(
    key: string,
    holder: string,
    generation: string,
    ttlMs: number,
  ): Promise<RenewOutcome> {
    const code = (await RENEW_FILL.run(
      this.redis,
      [blobKeys.fillLease(key), blobKeys.fillRecord(key), blobKeys.generation(key)],
      [holder, ttlMs, generation],
    )) as number;
    return RENEW_CODES[code] ?? 'taken';
  }

  /** Records the outcome (kept `ttlMs` for followers still polling) and releases the lease. */
  async end(key: string, holder: string, state: 'done' | 'failed', ttlMs: number): Promise<void> {
    await END_FILL.run(
      this.redis,
      [blobKeys.fillLease(key), blobKeys.fillRecord(key)],
      [holder, state, ttlMs],
    );
  }

  /** Chunk `index` of a followed fill (its bytes when `fetch`), its state and lease, at once. */
  async poll(record: FillRecord, index: number, fetch: boolean): Promise<FillPoll> {
    const { key, uploadId } = record;
    const chunkKey = blobKeys.chunk(key, uploadId, index);
    const [chunk, state, lease, published] = await execPipeline(() => {
      const pipeline = this.redis.pipeline();
      if (fetch) pipeline.getBuffer(chunkKey);
      else pipeline.exists(chunkKey);
      return pipeline
        .hget(blobKeys.fillRecord(key), 'state')
        .get(blobKeys.fillLease(key))
        .hget(blobKeys.manifest(key), 'up');
    });
    return {
      chunk: fetch ? (chunk as Buffer | null) : chunk === 1 ? true : null,
      state: stateOf(state as string | null),
      leaseHolder: lease as string | null,
      publishedUploadId: published as string | null,
    };
  }
}

function stateOf(value: string | null): FillRecord['state'] | null {
  return value === 'running' || value === 'done' || value === 'failed' ? value : null;
}

function recordOf(key: string, fields: Record<string, string>): FillRecord | null {
  const state = stateOf(fields.state ?? null);
  if (state === null || fields.h === undefined || fields.up === undefined) return null;
  return {
    key,
    holder: fields.h,
    generation: fields.g ?? '',
    leaseMs: Number(fields.ttl ?? 0),
    size: Number(fields.size),
    chunkBytes: Number(fields.chunk),
    uploadId: fields.up,
    state,
    ...(fields.sha ? { sha256: fields.sha } : {}),
  };
}
