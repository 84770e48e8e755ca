import { expect } from 'chai';
import { ConfigError, DEFAULT_CONFIG, SETTINGS, loadConfig } from '../../dataplane/src/config.ts';

describe('loadConfig', () => {
  it('gives the documented defaults with an empty environment', () => {
    expect(loadConfig({ env: {} })).to.deep.equal(DEFAULT_CONFIG);
    expect(DEFAULT_CONFIG).to.include({ port: 8080, dataDir: './data', host: '127.0.0.1' });
  });

  it('reads the environment, with sizes in units', () => {
    const config = loadConfig({
      env: {
        PORT: '9000',
        BLOBCACHE_DATA_DIR: '/srv/blobs',
        BLOBCACHE_MAX_BLOB_BYTES: '2Gi',
        BLOBCACHE_MEMORY_CACHE_BYTES: '512Mi',
        BLOBCACHE_READ_TOKEN: 'r',
        BLOBCACHE_LOG_LEVEL: 'debug',
      },
    });
    expect(config).to.include({
      port: 9000,
      dataDir: '/srv/blobs',
      maxBlobBytes: 2 * 1024 ** 3,
      memoryCacheBytes: 512 * 1024 ** 2,
      readToken: 'r',
      logLevel: 'debug',
    });
  });

  it('lets the environment override the YAML file', () => {
    const config = loadConfig({
      env: { PORT: '7000' },
      fileText: 'port: 6000\ndataDir: /from/file\nmaxBlobBytes: 10Mi\n',
      fileName: 'blobcache.yaml',
    });
    expect(config).to.include({ port: 7000, dataDir: '/from/file', maxBlobBytes: 10 * 1024 ** 2 });
  });

  const bad: [Record<string, string>, string | undefined, RegExp][] = [
    [{ PORT: 'eighty' }, undefined, /^PORT must be a TCP port/],
    [{ PORT: '70000' }, undefined, /^PORT/],
    [
      { BLOBCACHE_MAX_BLOB_BYTES: '12 parsecs' },
      undefined,
      /^BLOBCACHE_MAX_BLOB_BYTES must be a size such as/,
    ],
    [{ BLOBCACHE_MAX_BLOB_BYTES: '0' }, undefined, /^BLOBCACHE_MAX_BLOB_BYTES/],
    [{ BLOBCACHE_IDLE_TIMEOUT_MS: '-1' }, undefined, /^BLOBCACHE_IDLE_TIMEOUT_MS/],
    [{ BLOBCACHE_LOG_LEVEL: 'loud' }, undefined, /^BLOBCACHE_LOG_LEVEL must be one of/],
    [{ BLOBCACHE_DATA_DIR: ' ' }, undefined, /^BLOBCACHE_DATA_DIR/],
    [
      { BLOBCACHE_MEMORY_CACHE_BYTES: '1Mi', BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '2Mi' },
      undefined,
      /MAX_ENTRY_BYTES .* must not exceed/,
    ],
    [{}, 'prot: 1\n', /unknown key 'prot'/],
    [{}, 'port: [1\n', /not valid YAML/],
    [{}, '- 1\n', /must be a YAML mapping/],
    [{}, 'port: nope\n', /cfg.yaml: port must be a TCP port/],
  ];
  for (const [env, fileText, message] of bad) {
    it(`rejects ${JSON.stringify(env)}${fileText === undefined ? '' : ` with file ${JSON.stringify(fileText)}`}`, () => {
      expect(() => loadConfig({ env, fileText, fileName: 'cfg.yaml' })).to.throw(
        ConfigError,
        message,
      );
    });
  }

  // The settings the issue found harmful at 0: a miss answered 500 (SET PX 0), filled
  // blobs that never expire, WAIT blocking forever, upload journal entries dropped.
  for (const name of [
    'BLOBCACHE_NEGATIVE_CACHE_MS',
    'BLOBCACHE_FILL_WAIT_MS',
    'BLOBCACHE_FILL_LEASE_MS',
    'BLOBCACHE_CACHED_TTL_MS',
    'BLOBCACHE_REPLICA_WAIT_MS',
    'BLOBCACHE_REQUEST_TIMEOUT_MS',
  ]) {
    it(`rejects ${name}=0, naming it`, () => {
      expect(() => loadConfig({ env: { [name]: '0' } })).to.throw(
        ConfigError,
        new RegExp(`^${name} must be (at least|from) [1-9]`),
      );
    });
  }

  it('rejects an upload abandon time that an upload still streaming could reach', () => {
    expect(() =>
      loadConfig({
        env: { BLOBCACHE_REQUEST_TIMEOUT_MS: '600000', BLOBCACHE_UPLOAD_ABANDON_MS: '600000' },
      }),
    ).to.throw(
      ConfigError,
      /^BLOBCACHE_UPLOAD_ABANDON_MS \(600000\) must exceed BLOBCACHE_REQUEST_TIMEOUT_MS/,
    );
    expect(
      loadConfig({
        env: { BLOBCACHE_REQUEST_TIMEOUT_MS: '600000', BLOBCACHE_UPLOAD_ABANDON_MS: '600001' },
      }).uploadAbandonMs,
    ).to.equal(600_001);
  });

  it('rejects a headers timeout longer than the request timeout', () => {
    expect(() =>
      loadConfig({
        env: { BLOBCACHE_HEADERS_TIMEOUT_MS: '5000', BLOBCACHE_REQUEST_TIMEOUT_MS: '4000' },
      }),
    ).to.throw(ConfigError, /^BLOBCACHE_HEADERS_TIMEOUT_MS \(5000\) must not exceed/);
  });

  describe('every numeric setting declares its range, and it holds', () => {
    // Values that keep the rules relating two settings satisfied at every bound below.
    const base = {
      BLOBCACHE_HEADERS_TIMEOUT_MS: '1000',
      BLOBCACHE_REQUEST_TIMEOUT_MS: '1000',
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '1',
    };
    for (const setting of SETTINGS) {
      if (!('min' in setting)) continue;
      const { env, key, min, max } = setting;
      it(`${env}: ${min} to ${max ?? 'no maximum'}`, () => {
        expect(loadConfig({ env: { ...base, [env]: String(min) } })[key]).to.equal(min);
        if (min > 0) {
          expect(() => loadConfig({ env: { ...base, [env]: String(min - 1) } })).to.throw(
            ConfigError,
            new RegExp(`^${env} must be (at least|from) ${min}`),
          );
        }
        expect(() => loadConfig({ env: { ...base, [env]: '-1' } })).to.throw(
          ConfigError,
          new RegExp(`^${env} must be`),
        );
        if (max !== undefined) {
          expect(loadConfig({ env: { ...base, [env]: String(max) } })[key]).to.equal(max);
          expect(() => loadConfig({ env: { ...base, [env]: String(max + 1) } })).to.throw(
            ConfigError,
            new RegExp(`^${env} must be from ${min} to ${max}`),
          );
        }
        // The YAML file's key is named the same way.
        expect(() =>
          loadConfig({ env: {}, fileText: `${key}: -1\n`, fileName: 'cfg.yaml' }),
        ).to.throw(ConfigError, new RegExp(`^cfg.yaml: ${key} must be`));
      });
    }

    it('covers the settings that need a bound', () => {
      const bounded = SETTINGS.filter((setting) => 'min' in setting).map((setting) => setting.key);
      const numeric = Object.entries(DEFAULT_CONFIG)
        .filter(([, value]) => typeof value === 'number')
        .map(([key]) => key);
      expect(bounded).to.include.members(numeric);
    });
  });
});
