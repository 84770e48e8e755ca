/**
 * The little the operator knows of how the data plane lays blobs out in Redis
 * (dataplane/src/redis/keys.ts and scripts.ts; a unit test keeps the two in step), for the
 * Drop mode of scale-in: a blob the durable tier has may be dropped instead of moved.
 *
 * A blob's manifest `bc:{<md5>}:m` is a hash with `state` (`pending` until S3 has the blob,
 * then `cached`), `up` (the upload id) and `n` (the chunk count); its chunks are
 * `bc:{<md5>}:c:<up>:<index>`. Everything else of a blob (generation, leases, upload markers)
 * and every journal stream is moved with its slot, never dropped.
 */

/** Matches a manifest key; group 1 is the MD5. */
export const MANIFEST_KEY = /^bc:\{([0-9a-f]{32})\}:m$/;

/** The state of a manifest whose blob the durable tier has. */
export const CACHED_STATE = 'cached';

/**
 * Deletes a blob if, and only if, its manifest says the durable tier has it, in one atomic
 * step (an upload or a DELETE cannot slip between the check and the delete). Runs on a node
 * that owns the slot outright (never while the slot is open: a chunk evicted meanwhile would
 * then be a key Redis wants to redirect). KEYS[1] the manifest; returns 1 dropped, 0 kept.
 */
export const DROP_CACHED_BLOB_LUA = `
local fields = redis.call('HMGET', KEYS[1], 'state', 'up', 'n')
if fields[1] ~= '${CACHED_STATE}' then return 0 end
local up, n = fields[2], tonumber(fields[3])
if not up or not n then return 0 end
local prefix = string.sub(KEYS[1], 1, #KEYS[1] - 1)
for i = 0, n - 1 do redis.call('UNLINK', prefix .. 'c:' .. up .. ':' .. i) end
redis.call('UNLINK', KEYS[1])
return 1
`;

/** The key the data plane and the backfill read to tell a new Redis data set from an old one. */
export const INCARNATION_KEY = 'bc:incarnation';
