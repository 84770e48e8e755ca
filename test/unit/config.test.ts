import { expect } from 'chai';
import { ConfigError, DEFAULT_CONFIG, loadConfig } from '../../dataplane/src/config.ts';

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
      /^BLOBCACHE_MAX_BLOB_BYTES must be a positive size/,
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
});
