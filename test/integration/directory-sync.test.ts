import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobOf, md5 } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { requireCommand } from '../harness/services.ts';

/** Traces the fsync calls of a running process (all its threads), with the path of each fd. */
async function traceFsyncs(pid: number, output: string): Promise<{ stop: () => Promise<void> }> {
  const strace = spawn(
    'strace',
    ['-f', '-y', '-e', 'trace=fsync,fdatasync', '-o', output, '-p', String(pid)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => strace.once('exit', () => resolve()));
  // strace says so on stderr once it traces the process.
  await new Promise<void>((resolve, reject) => {
    let said = '';
    strace.stderr.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (/attached/.test(said)) resolve();
    });
    void exited.then(() => reject(new Error(`strace ended before attaching: ${said}`)));
  });
  return {
    async stop() {
      if (strace.exitCode === null) strace.kill('SIGINT');
      await exited;
    },
  };
}

describe('embedded uploads share directory syncs (docs/decisions/0080)', function () {
  this.timeout(120_000);
  let dataDir: string;
  let plane: SpawnedDataPlane | undefined;
  before(async () => {
    requireCommand('strace', 'install the Debian package strace (scripts/testenv/setup.sh does)');
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-dirsync-'));
  });
  after(async () => {
    await plane?.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('fsyncs each of 24 concurrent uploads into one directory, shares the directory fsyncs, and has every acknowledged blob after a SIGKILL right after the answers', async () => {
    // 24 blobs whose keys share a prefix, so they land in one directory.
    const blobs: Buffer[] = [];
    for (let seed = 1; blobs.length < 24; seed++) {
      const blob = blobOf(4096, 90_000 + seed);
      if (md5(blob).startsWith('a7')) blobs.push(blob);
    }
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    const traced = join(dataDir, '..', `${dataDir.split('/').pop()}.strace`);
    const trace = await traceFsyncs(plane.child.pid!, traced);
    const statuses = await Promise.all(
      blobs.map(
        async (blob) =>
          (await fetch(`${plane!.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob }))
            .status,
      ),
    );
    expect(statuses.filter((status) => status !== 201)).to.deep.equal([]);
    await plane.stop('SIGKILL');
    await trace.stop();

    const calls = (await readFile(traced, 'utf8')).split('\n');
    await rm(traced, { force: true });
    const onPath = (pattern: RegExp) =>
      calls.filter((line) => /fsync\(\d+</.test(line) && pattern.test(line)).length; // "<unfinished ...>" lines count: the call was made
    // Every blob's own bytes (written under tmp/, then linked into place) were synced.
    const dataSyncs = onPath(/<[^>]*\/tmp\/[0-9a-f-]{36}>/);
    const directorySyncs = onPath(/<[^>]*\/blobs\/a7>/);
    expect(dataSyncs, 'fsyncs of blob files').to.be.at.least(blobs.length);
    expect(directorySyncs, 'fsyncs of their directory').to.be.at.least(1).and.below(blobs.length);
    // The prefix directory was new to this process: its own name in blobs/ was synced
    // before any upload into it was answered (docs/decisions/0083).
    expect(onPath(/<[^>]*\/blobs>/), 'fsyncs of blobs/').to.be.at.least(1);

    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    for (const blob of blobs) {
      const response = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`);
      expect(response.status, md5(blob)).to.equal(200);
      expect(Buffer.from(await response.arrayBuffer()).equals(blob)).to.be.true;
    }
  });
});
