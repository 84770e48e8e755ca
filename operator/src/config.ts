/** Every setting of the operator, parsed and validated once by `loadConfig` (in main.ts). */
export interface OperatorConfig {
  /** Namespace of the leader Lease (where the operator runs). Env `OPERATOR_NAMESPACE`. @default 'blobcache-system' */
  namespace: string;
  /** This instance's name in the Lease. Env `POD_NAME`. @default '<hostname>-<pid>' */
  identity: string;
  /** Name of the leader Lease. Env `OPERATOR_LEASE_NAME`. @default 'blobcache-operator' */
  leaseName: string;
  /** How long a Lease holder is trusted without renewing. Env `OPERATOR_LEASE_DURATION_SECONDS`. @default 15 */
  leaseDurationSeconds: number;
  /** The leader stops reconciling when it could not renew for this long (less than the lease duration). Env `OPERATOR_RENEW_DEADLINE_MS`. @default 10000 */
  renewDeadlineMs: number;
  /** Time between Lease renewals and acquisition attempts. Env `OPERATOR_RETRY_PERIOD_MS`. @default 2000 */
  retryPeriodMs: number;
  /** BlobCaches reconciled at once. Env `OPERATOR_WORKERS`. @default 2 */
  workers: number;
  /** Every BlobCache is reconciled at least this often, events or not. Env `OPERATOR_RESYNC_MS`. @default 600000 */
  resyncMs: number;
  /** First retry delay after a failed reconcile (doubling per failure). Env `OPERATOR_RETRY_BASE_DELAY_MS`. @default 1000 */
  retryBaseDelayMs: number;
  /** Longest retry delay. Env `OPERATOR_RETRY_MAX_DELAY_MS`. @default 300000 */
  retryMaxDelayMs: number;
  /** Connect and command timeout of the operator's Redis connections. Env `OPERATOR_REDIS_TIMEOUT_MS`. @default 3000 */
  redisTimeoutMs: number;
  /** Address of /healthz, /readyz and /metrics. Env `OPERATOR_METRICS_HOST`. @default '0.0.0.0' */
  metricsHost: string;
  /** Port of /healthz, /readyz and /metrics. Env `OPERATOR_METRICS_PORT`. @default 8081 */
  metricsPort: number;
  /** winston level. Env `OPERATOR_LOG_LEVEL`. @default 'info' */
  logLevel: 'error' | 'warn' | 'info' | 'debug';
}

export const DEFAULT_CONFIG: Omit<OperatorConfig, 'identity'> = {
  namespace: 'blobcache-system',
  leaseName: 'blobcache-operator',
  leaseDurationSeconds: 15,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  workers: 2,
  resyncMs: 600_000,
  retryBaseDelayMs: 1_000,
  retryMaxDelayMs: 300_000,
  redisTimeoutMs: 3_000,
  metricsHost: '0.0.0.0',
  metricsPort: 8081,
  logLevel: 'info',
};

/** A configuration error; the message always names the setting. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Parse = (value: string, name: string) => string | number;

const text: Parse = (value) => value;
const whole =
  (min: number, max: number, unit: string): Parse =>
  (value, name) => {
    const number = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(number >= min && number <= max)) {
      throw new ConfigError(`${name} must be ${unit} from ${min} to ${max}; got '${value}'`);
    }
    return number;
  };
const level: Parse = (value, name) => {
  if (!['error', 'warn', 'info', 'debug'].includes(value))
    throw new ConfigError(`${name} must be one of error, warn, info, debug; got '${value}'`);
  return value;
};
const dnsName: Parse = (value, name) => {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(value) || value.length > 253)
    throw new ConfigError(`${name} must be a Kubernetes object name; got '${value}'`);
  return value;
};

const DAY_MS = 86_400_000;
const SETTINGS: readonly [keyof OperatorConfig, string, Parse][] = [
  ['namespace', 'OPERATOR_NAMESPACE', dnsName],
  ['identity', 'POD_NAME', text],
  ['leaseName', 'OPERATOR_LEASE_NAME', dnsName],
  [
    'leaseDurationSeconds',
    'OPERATOR_LEASE_DURATION_SECONDS',
    whole(1, 3600, 'a whole number of seconds'),
  ],
  ['renewDeadlineMs', 'OPERATOR_RENEW_DEADLINE_MS', whole(1, 3_600_000, 'milliseconds')],
  ['retryPeriodMs', 'OPERATOR_RETRY_PERIOD_MS', whole(1, 3_600_000, 'milliseconds')],
  ['workers', 'OPERATOR_WORKERS', whole(1, 64, 'a whole number')],
  ['resyncMs', 'OPERATOR_RESYNC_MS', whole(1_000, 7 * DAY_MS, 'milliseconds')],
  ['retryBaseDelayMs', 'OPERATOR_RETRY_BASE_DELAY_MS', whole(1, DAY_MS, 'milliseconds')],
  ['retryMaxDelayMs', 'OPERATOR_RETRY_MAX_DELAY_MS', whole(1, DAY_MS, 'milliseconds')],
  ['redisTimeoutMs', 'OPERATOR_REDIS_TIMEOUT_MS', whole(1, 600_000, 'milliseconds')],
  ['metricsHost', 'OPERATOR_METRICS_HOST', text],
  ['metricsPort', 'OPERATOR_METRICS_PORT', whole(0, 65535, 'a TCP port')],
  ['logLevel', 'OPERATOR_LOG_LEVEL', level],
];

/**
 * Builds the config from the environment over the defaults. `defaultIdentity` stands in
 * for POD_NAME when it is unset (main.ts passes `<hostname>-<pid>`).
 */
export function loadConfig(sources: {
  env: Record<string, string | undefined>;
  defaultIdentity: string;
}): OperatorConfig {
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG, identity: sources.defaultIdentity };
  for (const [key, variable, parse] of SETTINGS) {
    const raw = sources.env[variable]?.trim();
    if (raw === undefined) continue;
    if (raw === '') throw new ConfigError(`${variable} must not be empty`);
    config[key] = parse(raw, variable);
  }
  const result = config as unknown as OperatorConfig;
  // client-go's rules: a leader must give up before its lease can be taken, and must get
  // more than one renewal attempt within its deadline.
  if (result.renewDeadlineMs >= result.leaseDurationSeconds * 1000) {
    throw new ConfigError(
      `OPERATOR_RENEW_DEADLINE_MS (${result.renewDeadlineMs}) must be less than OPERATOR_LEASE_DURATION_SECONDS (${result.leaseDurationSeconds} s)`,
    );
  }
  if (result.retryPeriodMs * 1.2 >= result.renewDeadlineMs) {
    throw new ConfigError(
      `OPERATOR_RETRY_PERIOD_MS (${result.retryPeriodMs}) must be well below OPERATOR_RENEW_DEADLINE_MS (${result.renewDeadlineMs}): at most ${Math.floor(result.renewDeadlineMs / 1.2) - 1}`,
    );
  }
  if (result.retryMaxDelayMs < result.retryBaseDelayMs) {
    throw new ConfigError(
      `OPERATOR_RETRY_MAX_DELAY_MS (${result.retryMaxDelayMs}) must not be below OPERATOR_RETRY_BASE_DELAY_MS (${result.retryBaseDelayMs})`,
    );
  }
  return result;
}
