import { expect } from 'chai';
import { ConfigError, DEFAULT_CONFIG, loadConfig } from '../../../operator/src/config.ts';

const load = (env: Record<string, string>) => loadConfig({ env, defaultIdentity: 'host-1' });

describe('operator config', () => {
  it('uses the documented defaults, with the given identity', () => {
    expect(load({})).to.deep.equal({ ...DEFAULT_CONFIG, identity: 'host-1' });
  });

  it('reads every setting from the environment', () => {
    const config = load({
      OPERATOR_NAMESPACE: 'ops',
      POD_NAME: 'operator-0',
      OPERATOR_LEASE_DURATION_SECONDS: '20',
      OPERATOR_RENEW_DEADLINE_MS: '12000',
      OPERATOR_RETRY_PERIOD_MS: '1000',
      OPERATOR_WORKERS: '4',
      OPERATOR_METRICS_PORT: '9090',
      OPERATOR_LOG_LEVEL: 'debug',
    });
    expect(config).to.include({
      namespace: 'ops',
      identity: 'operator-0',
      leaseDurationSeconds: 20,
      renewDeadlineMs: 12_000,
      retryPeriodMs: 1_000,
      workers: 4,
      metricsPort: 9090,
      logLevel: 'debug',
    });
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{ OPERATOR_METRICS_PORT: '70000' }, /^OPERATOR_METRICS_PORT must be a TCP port/],
    [{ OPERATOR_WORKERS: 'two' }, /^OPERATOR_WORKERS must be a whole number/],
    [{ OPERATOR_LOG_LEVEL: 'loud' }, /^OPERATOR_LOG_LEVEL must be one of/],
    [{ OPERATOR_NAMESPACE: 'Not_A_Name' }, /^OPERATOR_NAMESPACE must be a Kubernetes object name/],
    [{ OPERATOR_RESYNC_MS: '' }, /^OPERATOR_RESYNC_MS must not be empty/],
    [
      { OPERATOR_RENEW_DEADLINE_MS: '15000' },
      /^OPERATOR_RENEW_DEADLINE_MS \(15000\) must be less than OPERATOR_LEASE_DURATION_SECONDS/,
    ],
    [
      { OPERATOR_RETRY_PERIOD_MS: '9000' },
      /^OPERATOR_RETRY_PERIOD_MS \(9000\) must be well below OPERATOR_RENEW_DEADLINE_MS/,
    ],
    [
      { OPERATOR_RETRY_BASE_DELAY_MS: '5000', OPERATOR_RETRY_MAX_DELAY_MS: '1000' },
      /^OPERATOR_RETRY_MAX_DELAY_MS \(1000\) must not be below OPERATOR_RETRY_BASE_DELAY_MS/,
    ],
  ];
  for (const [env, message] of bad) {
    it(`refuses ${JSON.stringify(env)} with a message naming the setting`, () => {
      expect(() => load(env))
        .to.throw(ConfigError)
        .with.property('message')
        .that.matches(message);
    });
  }
});
