import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { expectAlive } from '../harness/hostile-clients.ts';

const TESTENV = process.env.BLOBCACHE_TESTENV_DIR ?? join(homedir(), '.cache/blobcache/testenv');
/** Installed by scripts/testenv/setup.sh (npm test runs it first). */
const SCHEMATHESIS = join(TESTENV, 'schemathesis-4/bin/st');
/** Cases per operation: enough to find what a spec and a server disagree on, small enough for CI. */
const MAX_EXAMPLES = 40;

function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

/**
 * docs/openapi.yaml against the running app (`npm start`, with tokens so that the auth
 * checks run too): every schemathesis check, a bounded number of generated cases, a fixed
 * seed so that CI runs are repeatable.
 */
describe('the API against its OpenAPI document (schemathesis)', function () {
  this.timeout(600_000);
  let dataDir: string;
  let plane: SpawnedDataPlane;
  before(async () => {
    if (!existsSync(SCHEMATHESIS)) {
      throw new Error(`${SCHEMATHESIS} is missing: run bash scripts/testenv/setup.sh`);
    }
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-schemathesis-'));
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_READ_TOKEN: 'read-token',
      BLOBCACHE_WRITE_TOKEN: 'write-token',
      BLOBCACHE_MAX_BLOB_BYTES: '1Mi',
    });
  });
  after(async () => {
    await plane?.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('finds no disagreement between the document and the server', async () => {
    const { code, output } = await run(
      SCHEMATHESIS,
      [
        '--config-file',
        join(REPO_ROOT, 'test/schemathesis/schemathesis.toml'),
        'run',
        join(REPO_ROOT, 'docs/openapi.yaml'),
        '--url',
        plane.url,
        '--header',
        'Authorization: Bearer write-token',
        '--checks',
        'all',
        '--max-examples',
        String(MAX_EXAMPLES),
        '--seed',
        '20261130',
        // One worker: with two, schemathesis's threads call ast.parse at once, which this
        // Python can fail with "AST constructor recursion depth mismatch" (seen in CI).
        '--workers',
        '1',
        '--generation-database',
        'none',
        '--no-color',
      ],
      dataDir,
    );
    const summary = output
      .split('\n')
      .filter((line) => /passed|failed|generated|Test cases/.test(line));
    console.log(`      schemathesis: ${summary.join(' | ').replace(/\s+/g, ' ').slice(0, 300)}`);
    expect(code, output.slice(-6000)).to.equal(0);
    expect(plane.child.exitCode).to.equal(null);
    await expectAlive(plane.url);
  });
});
