import { parse as parseYaml } from 'yaml';
import type { Durability } from './blob/service.ts';
import { ConfigError, parseValue, type Setting } from './config-values.ts';

export { ConfigError } from './config-values.ts';

/** Every setting of the data plane, parsed and validated once by `loadConfig`. */
export interface DataPlaneConfig {
  /** TCP port. Env `PORT`. @default 8080 */
  port: number;
  /** Listen address. Env `BLOBCACHE_HOST`. @default '127.0.0.1' (the image sets 0.0.0.0) */
  host: string;
  /** Directory of the embedded durable tier. Env `BLOBCACHE_DATA_DIR`. @default './data' */
  dataDir: string;
  /** Bearer token granting reads; unset leaves reads open. Env `BLOBCACHE_READ_TOKEN`. */
  readToken?: string;
  /** Bearer token granting reads and writes; unset leaves writes open. Env `BLOBCACHE_WRITE_TOKEN`. */
  writeToken?: string;
  /** Largest accepted blob. Env `BLOBCACHE_MAX_BLOB_BYTES`. @default 5 GiB */
  maxBlobBytes: number;
  /** Bytes held by the in-process LRU (the embedded fast tier, or with Redis the hot tier in front of it). Env `BLOBCACHE_MEMORY_CACHE_BYTES`. @default 64 MiB */
  memoryCacheBytes: number;
  /** Largest blob the in-process LRU admits. Env `BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES`. @default 8 MiB */
  memoryCacheMaxEntryBytes: number;
  /** A connection idle this long is closed (slow or stuck clients). Env `BLOBCACHE_IDLE_TIMEOUT_MS`. @default 60000 */
  idleTimeoutMs: number;
  /** Time allowed to receive request headers. Env `BLOBCACHE_HEADERS_TIMEOUT_MS`. @default 20000 */
  headersTimeoutMs: number;
  /** Time allowed for a whole request. Env `BLOBCACHE_REQUEST_TIMEOUT_MS`. @default 3600000 */
  requestTimeoutMs: number;
  /** How long shutdown waits for in-flight requests and retries uploads. Env `BLOBCACHE_SHUTDOWN_GRACE_MS`. @default 25000 */
  shutdownGraceMs: number;
  /** winston level. Env `BLOBCACHE_LOG_LEVEL`. @default 'info' */
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** Redis Cluster startup nodes (`host:port,...`); unset: the in-process LRU. Env `BLOBCACHE_REDIS_NODES`. */
  redisNodes?: string[];
  /** Redis password. Env `BLOBCACHE_REDIS_PASSWORD`. */
  redisPassword?: string;
  /** Size of the chunks a blob is split into in Redis. Env `BLOBCACHE_CHUNK_BYTES`. @default 1 MiB */
  chunkBytes: number;
  /** When an upload is acknowledged. Env `BLOBCACHE_DURABILITY`. @default 'WriteBehind' */
  durability: Durability;
  /** S3 bucket of the durable tier; unset: the directory `dataDir`. Env `BLOBCACHE_S3_BUCKET`. */
  s3Bucket?: string;
  /** S3 endpoint for S3-compatible servers. Env `BLOBCACHE_S3_ENDPOINT`. */
  s3Endpoint?: string;
  /** Object key prefix. Env `BLOBCACHE_S3_PREFIX`. @default 'blobs' */
  s3Prefix: string;
  /** Path-style addressing (needed by most S3-compatible servers). Env `BLOBCACHE_S3_FORCE_PATH_STYLE`. @default true when an endpoint is set */
  s3ForcePathStyle?: boolean;
  /** AWS region. Env `AWS_REGION`. @default 'us-east-1' */
  s3Region: string;
  /** Redis Streams partitions of the write-behind journal. Env `BLOBCACHE_JOURNAL_PARTITIONS`. @default 8 */
  journalPartitions: number;
  /** Uploads to the durable tier run at once per process. Env `BLOBCACHE_UPLOADERS`. @default 4 */
  uploaders: number;
  /** A journal entry pending this long on a silent consumer is taken over. Env `BLOBCACHE_JOURNAL_CLAIM_IDLE_MS`. @default 30000 */
  journalClaimIdleMs: number;
  /** Longest wait between retries of a failed upload. Env `BLOBCACHE_UPLOAD_RETRY_MAX_MS`. @default 60000 */
  uploadRetryMaxMs: number;
  /** A journal entry whose blob was never published this long after it was appended belongs to an upload that failed or was cut (the process died mid-upload), and is dropped; longer than `requestTimeoutMs`, so no upload still streaming loses its entry. Env `BLOBCACHE_UPLOAD_ABANDON_MS`. @default 3660000 */
  uploadAbandonMs: number;
  /** How long a reader waits for a fill whose lease another process holds to show itself (it is opening the object) before reading the durable tier itself. Env `BLOBCACHE_FILL_WAIT_MS`. @default 30000 */
  fillWaitMs: number;
  /** Expiry of a fill's lease in Redis; the fill renews it every third of this while it runs, so a fill of any length keeps it, and a dead process's fill is taken over this long after it stopped. Env `BLOBCACHE_FILL_LEASE_MS`. @default 10000 */
  fillLeaseMs: number;
  /** How long a durable-tier miss is remembered. Env `BLOBCACHE_NEGATIVE_CACHE_MS`. @default 5000 */
  negativeCacheMs: number;
  /** TTL given to blobs once the durable tier has them (evictable from then on). Env `BLOBCACHE_CACHED_TTL_MS`. @default 7 days */
  cachedTtlMs: number;
  /** How long to wait for a Redis replica to confirm a write. Env `BLOBCACHE_REPLICA_WAIT_MS`. @default 2000 */
  replicaWaitMs: number;
  /** With Redis, bytes of chunks all reads together may fetch ahead of their clients; past it reads fetch nothing ahead and read chunks in 64 KiB pieces. Env `BLOBCACHE_READ_AHEAD_BYTES`. @default 64 MiB */
  readAheadBytes: number;
  /** Connections served at once; more are answered 503 and closed. Env `BLOBCACHE_MAX_CONNECTIONS`. @default 1024 */
  maxConnections: number;
  /** With Redis, how long a blob stays in the per-process hot tier (a bound on serving a blob deleted elsewhere if an invalidation is missed). Env `BLOBCACHE_HOT_TTL_MS`. @default 30000 */
  hotTtlMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_CONFIG: DataPlaneConfig = {
  port: 8080,
  host: '127.0.0.1',
  dataDir: './data',
  maxBlobBytes: 5 * 1024 * MiB,
  memoryCacheBytes: 64 * MiB,
  memoryCacheMaxEntryBytes: 8 * MiB,
  idleTimeoutMs: 60_000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 3_600_000,
  shutdownGraceMs: 25_000,
  logLevel: 'info',
  chunkBytes: MiB,
  durability: 'WriteBehind',
  s3Prefix: 'blobs',
  s3Region: 'us-east-1',
  journalPartitions: 8,
  uploaders: 4,
  journalClaimIdleMs: 30_000,
  uploadRetryMaxMs: 60_000,
  uploadAbandonMs: 3_660_000,
  fillWaitMs: 30_000,
  fillLeaseMs: 10_000,
  negativeCacheMs: 5_000,
  cachedTtlMs: 7 * 24 * 3600 * 1000,
  replicaWaitMs: 2_000,
  hotTtlMs: 30_000,
  maxConnections: 1024,
  readAheadBytes: 64 * MiB,
};

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const SETTINGS: readonly Setting<keyof DataPlaneConfig>[] = [
  { key: 'port', env: 'PORT', kind: 'port', min: 0, max: 65_535, why: '0 picks a free port' },
  { key: 'host', env: 'BLOBCACHE_HOST', kind: 'string' },
  { key: 'dataDir', env: 'BLOBCACHE_DATA_DIR', kind: 'string' },
  { key: 'readToken', env: 'BLOBCACHE_READ_TOKEN', kind: 'string' },
  { key: 'writeToken', env: 'BLOBCACHE_WRITE_TOKEN', kind: 'string' },
  { key: 'maxBlobBytes', env: 'BLOBCACHE_MAX_BLOB_BYTES', kind: 'bytes', min: 1 },
  { key: 'memoryCacheBytes', env: 'BLOBCACHE_MEMORY_CACHE_BYTES', kind: 'bytes', min: 1 },
  {
    key: 'memoryCacheMaxEntryBytes',
    env: 'BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES',
    kind: 'bytes',
    min: 1,
  },
  {
    key: 'idleTimeoutMs',
    env: 'BLOBCACHE_IDLE_TIMEOUT_MS',
    kind: 'ms',
    min: SECOND,
    why: 'stuck clients must be cut',
  },
  { key: 'headersTimeoutMs', env: 'BLOBCACHE_HEADERS_TIMEOUT_MS', kind: 'ms', min: SECOND },
  {
    key: 'requestTimeoutMs',
    env: 'BLOBCACHE_REQUEST_TIMEOUT_MS',
    kind: 'ms',
    min: SECOND,
    why: 'every upload must end, so its journal entry can be told from an abandoned one',
  },
  { key: 'shutdownGraceMs', env: 'BLOBCACHE_SHUTDOWN_GRACE_MS', kind: 'ms', min: 0 },
  { key: 'logLevel', env: 'BLOBCACHE_LOG_LEVEL', kind: 'level' },
  { key: 'redisNodes', env: 'BLOBCACHE_REDIS_NODES', kind: 'nodes' },
  { key: 'redisPassword', env: 'BLOBCACHE_REDIS_PASSWORD', kind: 'string' },
  {
    key: 'chunkBytes',
    env: 'BLOBCACHE_CHUNK_BYTES',
    kind: 'bytes',
    min: 16 * 1024,
    max: 256 * MiB,
    why: 'Redis values are limited to 512 MiB, and tiny chunks make millions of keys',
  },
  { key: 'durability', env: 'BLOBCACHE_DURABILITY', kind: 'durability' },
  { key: 's3Bucket', env: 'BLOBCACHE_S3_BUCKET', kind: 'string' },
  { key: 's3Endpoint', env: 'BLOBCACHE_S3_ENDPOINT', kind: 'string' },
  { key: 's3Prefix', env: 'BLOBCACHE_S3_PREFIX', kind: 'string' },
  { key: 's3ForcePathStyle', env: 'BLOBCACHE_S3_FORCE_PATH_STYLE', kind: 'bool' },
  { key: 's3Region', env: 'AWS_REGION', kind: 'string' },
  {
    key: 'journalPartitions',
    env: 'BLOBCACHE_JOURNAL_PARTITIONS',
    kind: 'count',
    min: 1,
    max: 1024,
  },
  { key: 'uploaders', env: 'BLOBCACHE_UPLOADERS', kind: 'count', min: 1, max: 1024 },
  {
    key: 'journalClaimIdleMs',
    env: 'BLOBCACHE_JOURNAL_CLAIM_IDLE_MS',
    kind: 'ms',
    min: SECOND,
    why: 'entries of live processes would be taken from them',
  },
  { key: 'uploadRetryMaxMs', env: 'BLOBCACHE_UPLOAD_RETRY_MAX_MS', kind: 'ms', min: 250 },
  { key: 'uploadAbandonMs', env: 'BLOBCACHE_UPLOAD_ABANDON_MS', kind: 'ms', min: 2 * SECOND },
  {
    key: 'fillWaitMs',
    env: 'BLOBCACHE_FILL_WAIT_MS',
    kind: 'ms',
    min: 100,
    max: 10 * MINUTE,
    why: 'readers must wait a little for a fill that holds the lease to show itself',
  },
  {
    key: 'fillLeaseMs',
    env: 'BLOBCACHE_FILL_LEASE_MS',
    kind: 'ms',
    min: 300,
    max: 10 * MINUTE,
    why: 'it is renewed every third of it, and a dead process holds fills this long',
  },
  {
    key: 'negativeCacheMs',
    env: 'BLOBCACHE_NEGATIVE_CACHE_MS',
    kind: 'ms',
    min: 100,
    max: HOUR,
    why: 'Redis refuses a zero expiry; a blob added to S3 directly stays unseen this long',
  },
  {
    key: 'cachedTtlMs',
    env: 'BLOBCACHE_CACHED_TTL_MS',
    kind: 'ms',
    min: MINUTE,
    why: 'without a TTL blobs in S3 could never be evicted, and a short one expires reads under way',
  },
  {
    key: 'replicaWaitMs',
    env: 'BLOBCACHE_REPLICA_WAIT_MS',
    kind: 'ms',
    min: 100,
    max: MINUTE,
    why: 'Redis WAIT with 0 waits forever; uploads are held this long',
  },
  {
    key: 'hotTtlMs',
    env: 'BLOBCACHE_HOT_TTL_MS',
    kind: 'ms',
    min: 100,
    max: 10 * MINUTE,
    why: 'the longest a process may serve a blob deleted elsewhere if the invalidation is lost',
  },
  {
    key: 'maxConnections',
    env: 'BLOBCACHE_MAX_CONNECTIONS',
    kind: 'count',
    min: 1,
    max: 1_000_000,
  },
  {
    key: 'readAheadBytes',
    env: 'BLOBCACHE_READ_AHEAD_BYTES',
    kind: 'bytes',
    min: 1024 * 1024,
    why: 'a read must be able to hold one whole 1 MiB chunk ahead',
  },
];

export interface ConfigSources {
  /** Usually `process.env`; only main.ts passes it. */
  env: Record<string, string | undefined>;
  /** Contents of the YAML file named by `BLOBCACHE_CONFIG_FILE`, if any. */
  fileText?: string;
  /** Name of that file, for error messages. */
  fileName?: string;
}

/** Builds the config: defaults, then the YAML file, then the environment (highest). */
export function loadConfig(sources: ConfigSources): DataPlaneConfig {
  const fromFile = parseFile(sources);
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  const known = new Set(SETTINGS.map((setting) => setting.key as string));
  for (const key of Object.keys(fromFile)) {
    if (!known.has(key))
      throw new ConfigError(`${sources.fileName ?? 'config file'}: unknown key '${key}'`);
  }
  for (const setting of SETTINGS) {
    const fileValue = fromFile[setting.key];
    if (fileValue !== undefined && fileValue !== null) {
      config[setting.key] = parseValue(
        fileValue,
        setting,
        `${sources.fileName ?? 'config file'}: ${setting.key}`,
      );
    }
    const envValue = sources.env[setting.env];
    if (envValue !== undefined) config[setting.key] = parseValue(envValue, setting, setting.env);
  }
  const result = config as unknown as DataPlaneConfig;
  checkTogether(result);
  return result;
}

/** Rules that relate two settings; each message names both. */
function checkTogether(config: DataPlaneConfig): void {
  if (config.memoryCacheMaxEntryBytes > config.memoryCacheBytes) {
    throw new ConfigError(
      `BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES (${config.memoryCacheMaxEntryBytes}) must not exceed BLOBCACHE_MEMORY_CACHE_BYTES (${config.memoryCacheBytes})`,
    );
  }
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    throw new ConfigError(
      `BLOBCACHE_HEADERS_TIMEOUT_MS (${config.headersTimeoutMs}) must not exceed BLOBCACHE_REQUEST_TIMEOUT_MS (${config.requestTimeoutMs})`,
    );
  }
  if (config.uploadAbandonMs <= config.requestTimeoutMs) {
    throw new ConfigError(
      `BLOBCACHE_UPLOAD_ABANDON_MS (${config.uploadAbandonMs}) must exceed BLOBCACHE_REQUEST_TIMEOUT_MS (${config.requestTimeoutMs}): an upload still streaming would lose its journal entry`,
    );
  }
}

function parseFile(sources: ConfigSources): Record<string, unknown> {
  if (sources.fileText === undefined) return {};
  let parsed: unknown;
  try {
    parsed = parseYaml(sources.fileText);
  } catch (error) {
    throw new ConfigError(
      `${sources.fileName ?? 'config file'} is not valid YAML: ${(error as Error).message}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(
      `${sources.fileName ?? 'config file'} must be a YAML mapping of settings`,
    );
  }
  return parsed as Record<string, unknown>;
}
