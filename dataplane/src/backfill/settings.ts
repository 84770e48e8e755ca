import { ConfigError, parseValue, type Setting } from '../config-values.ts';

/** What the backfill command is told on top of the data plane's configuration. */
export interface BackfillCommandSettings {
  /** Bytes of the most recent blobs to load, over all partitions. `--max-bytes`. */
  maxBytes: number;
  /** Blobs loaded at once by this process. `--parallelism`. @default 4 */
  parallelism: number;
  /** This process's partition, from 0. `--partition`. @default `JOB_COMPLETION_INDEX`, else 0 */
  partition: number;
  /** Partitions in all. `--partitions`. @default `BLOBCACHE_BACKFILL_PARTITIONS`, else 1 */
  partitions: number;
  /** How often progress is printed and written. `--progress-interval-ms`. @default 5000 */
  progressIntervalMs: number;
  /**
   * Names this run in its progress reports (`BLOBCACHE_BACKFILL_RUN`; a backfill Job sets its
   * own name), so the operator tells them from an earlier run's.
   */
  run?: string;
}

interface Flag {
  flag: string;
  setting: Setting<Exclude<keyof BackfillCommandSettings, 'run'>>;
}

/** Each flag, and the environment variable it defaults from (the indexed Job's for the partition). */
const FLAGS: readonly Flag[] = [
  {
    flag: '--max-bytes',
    setting: { key: 'maxBytes', env: 'BLOBCACHE_BACKFILL_MAX_BYTES', kind: 'bytes', min: 1 },
  },
  {
    flag: '--parallelism',
    setting: {
      key: 'parallelism',
      env: 'BLOBCACHE_BACKFILL_PARALLELISM',
      kind: 'count',
      min: 1,
      max: 256,
    },
  },
  {
    flag: '--partition',
    setting: { key: 'partition', env: 'JOB_COMPLETION_INDEX', kind: 'count', min: 0 },
  },
  {
    flag: '--partitions',
    setting: {
      key: 'partitions',
      env: 'BLOBCACHE_BACKFILL_PARTITIONS',
      kind: 'count',
      min: 1,
      max: 1024,
    },
  },
  {
    flag: '--progress-interval-ms',
    setting: {
      key: 'progressIntervalMs',
      env: 'BLOBCACHE_BACKFILL_PROGRESS_MS',
      kind: 'ms',
      min: 100,
    },
  },
];

export const BACKFILL_USAGE = `Usage: npm run backfill -- --max-bytes SIZE [options]

Loads the most recent blobs of the durable tier (S3, or the data directory) into the Redis
fast tier, up to SIZE bytes over all partitions, skipping what is cached. Reads the data
plane's settings (BLOBCACHE_REDIS_NODES, BLOBCACHE_S3_*, BLOBCACHE_CONFIG_FILE, ...).

  --max-bytes SIZE            budget, e.g. 512Mi, 20Gi       (BLOBCACHE_BACKFILL_MAX_BYTES)
  --parallelism N             blobs loaded at once [4]       (BLOBCACHE_BACKFILL_PARALLELISM)
  --partition I               this partition, from 0 [0]     (JOB_COMPLETION_INDEX)
  --partitions N              partitions in all [1]          (BLOBCACHE_BACKFILL_PARTITIONS)
  --progress-interval-ms MS   progress every MS [5000]       (BLOBCACHE_BACKFILL_PROGRESS_MS)
  --help                      this text

BLOBCACHE_BACKFILL_RUN, if set, names the run in its progress reports (a backfill Job sets it).
`;

const DEFAULTS: Omit<BackfillCommandSettings, 'maxBytes'> = {
  parallelism: 4,
  partition: 0,
  partitions: 1,
  progressIntervalMs: 5_000,
};

/**
 * The command's settings from its arguments (`--flag value` or `--flag=value`), falling back
 * to the environment, then the defaults. Throws a ConfigError naming the flag or variable.
 * Null for `--help`.
 */
export function parseBackfillSettings(
  argv: readonly string[],
  env: Record<string, string | undefined>,
): BackfillCommandSettings | null {
  const given = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return null;
    const [flag, inline] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    if (!FLAGS.some((known) => known.flag === flag))
      throw new ConfigError(`Unknown argument '${arg}' (see --help)`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    given.set(flag, value);
  }
  const settings: Record<string, unknown> = { ...DEFAULTS };
  for (const { flag, setting } of FLAGS) {
    const fromFlag = given.get(flag);
    const fromEnv = env[setting.env];
    if (fromFlag !== undefined) settings[setting.key] = parseValue(fromFlag, setting, flag);
    else if (fromEnv !== undefined && fromEnv !== '')
      settings[setting.key] = parseValue(fromEnv, setting, setting.env);
  }
  const run = env.BLOBCACHE_BACKFILL_RUN;
  if (run !== undefined && run !== '') settings.run = run;
  const result = settings as unknown as BackfillCommandSettings;
  if (result.maxBytes === undefined)
    throw new ConfigError('--max-bytes (or BLOBCACHE_BACKFILL_MAX_BYTES) is required');
  if (result.partition >= result.partitions) {
    throw new ConfigError(
      `The partition (${result.partition}) must be below the number of partitions (${result.partitions})`,
    );
  }
  return result;
}
