import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobOf, md5, sha256Base64 } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { expectAlive } from '../harness/hostile-clients.ts';
import { problemOf, uploadInTwoParts } from '../harness/http.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Every file under `dir` (relative paths), to show nothing half-written is left. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

async function freeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Issue 9, item 5: a full disk, on a real 8 MiB tmpfs this test mounts and unmounts. */
describe('a full disk on the embedded tier (real process, real tmpfs)', function () {
  this.timeout(60_000);
  let mountPoint: string;
  let plane: SpawnedDataPlane | undefined;

  before(async function () {
    if (process.getuid?.() !== 0) {
      throw new Error('This test mounts a tmpfs and must run as root (as CI does)');
    }
    mountPoint = await mkdtemp(join(tmpdir(), 'blobcache-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint]);
  });
  after(async () => {
    await plane?.stop('SIGKILL');
    execFileSync('umount', [mountPoint]);
    await rm(mountPoint, { recursive: true, force: true });
  });

  const blobUrl = (key: string) => `${plane!.url}/v1/blobs/${key}`;

  it('answers 507, reports it on /readyz, keeps nothing half-written, and recovers', async () => {
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: mountPoint });
    const small = blobOf(1 * MiB, 111);
    expect((await fetch(blobUrl(md5(small)), { method: 'PUT', body: small })).status).to.equal(201);
    const before = await filesUnder(mountPoint);

    const tooBig = blobOf(9 * MiB, 112);
    const full = await fetch(blobUrl(md5(tooBig)), { method: 'PUT', body: tooBig });
    expect(full.status).to.equal(507);
    expect(full.headers.get('retry-after')).to.equal('1');
    expect((await problemOf(full)).code).to.equal('insufficient-storage');
    expect(await filesUnder(mountPoint)).to.deep.equal(before);

    const ready = await fetch(`${plane.url}/readyz`);
    expect(ready.status).to.equal(503);
    expect((await problemOf(ready)).detail).to.match(/full/);
    await expectAlive(plane.url);

    // Freeing space (a DELETE) makes the process ready again, and uploads work.
    expect((await fetch(blobUrl(md5(small)), { method: 'DELETE' })).status).to.equal(204);
    expect((await fetch(`${plane.url}/readyz`)).status).to.equal(200);
    expect((await fetch(blobUrl(md5(small)), { method: 'PUT', body: small })).status).to.equal(201);
  });

  it('leaves no meta file behind when the disk fills while writing it, and the key still works', async () => {
    plane ??= await spawnDataPlane({ BLOBCACHE_DATA_DIR: mountPoint });
    // Fill the disk so that exactly the blob's pages are left: its meta file cannot be written.
    const page = 4096;
    const blob = blobOf(16 * page, 113);
    const key = md5(blob);
    const filler = join(mountPoint, 'filler');
    await writeFile(filler, Buffer.alloc((await freeBytes(mountPoint)) - blob.length));
    expect(await freeBytes(mountPoint)).to.equal(blob.length);
    const before = await filesUnder(mountPoint);
    const headers = { 'Repr-Digest': `sha-256=:${sha256Base64(blob)}:` };
    const failed = await fetch(blobUrl(key), { method: 'PUT', body: blob, headers });
    expect(failed.status).to.equal(507);
    // The blob's own bytes fitted: it was the meta file's write that failed.
    const causes = plane.logs.map((line) => JSON.stringify(line.cause ?? ''));
    expect(
      causes.some((cause) => /meta file.*ENOSPC/.test(cause)),
      causes.join('\n'),
    ).to.be.true;
    expect(await filesUnder(mountPoint)).to.deep.equal(before);

    await rm(filler);
    const stored = await fetch(blobUrl(key), { method: 'PUT', body: blob, headers });
    expect(stored.status).to.equal(201);
    const read = await fetch(blobUrl(key));
    expect(Buffer.from(await read.arrayBuffer()).equals(blob)).to.be.true;
    expect(read.headers.get('repr-digest')).to.equal(headers['Repr-Digest']);
    expect((await fetch(`${plane.url}/readyz`)).status).to.equal(200);
  });
});

/** Issue 9, item 7: one process per data directory; spool files cleaned at start. */
describe('the data directory (real processes)', function () {
  this.timeout(60_000);
  let dataDir: string;
  const planes: SpawnedDataPlane[] = [];
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-dirlock-'));
  });
  afterEach(async () => {
    await Promise.all(planes.splice(0).map((plane) => plane.stop('SIGKILL')));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses a second process with a clear error, without touching the first one’s uploads', async () => {
    const first = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    planes.push(first);
    const blob = blobOf(2 * MiB, 114);
    const status = await uploadInTwoParts(
      `${first.url}/v1/blobs/${md5(blob)}`,
      blob,
      MiB,
      async () => {
        // While the first process holds half an upload in tmp/, a second one tries to start.
        const second = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir }).then(
          () => null,
          (error: unknown) => error as Error,
        );
        expect(second?.message).to.contain('exited with 1');
        expect(second?.message).to.contain(`in use by process ${first.child.pid}`);
        expect(second?.message).to.contain(join(dataDir, 'lock'));
      },
    );
    expect(status).to.equal(201);
    await expectAlive(first.url);
    const read = await fetch(`${first.url}/v1/blobs/${md5(blob)}`);
    expect(Buffer.from(await read.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('starts at once after the previous process was killed (its lock is stale)', async () => {
    const killed = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    await killed.stop('SIGKILL');
    const next = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    planes.push(next);
    await expectAlive(next.url);
  });

  it('removes the lock on a clean stop', async () => {
    const plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    expect(await readdir(dataDir)).to.include('lock');
    expect(await plane.stop()).to.equal(0);
    expect(await readdir(dataDir)).to.not.include('lock');
  });

  it('cleans spool and temp files left by a crash when it starts', async () => {
    await mkdir(join(dataDir, 'spool'), { recursive: true });
    await mkdir(join(dataDir, 'tmp'), { recursive: true });
    await writeFile(join(dataDir, 'spool', 'left-by-a-crash'), Buffer.alloc(MiB));
    await writeFile(join(dataDir, 'tmp', 'left-by-a-crash'), Buffer.alloc(MiB));
    const plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    planes.push(plane);
    expect(await readdir(join(dataDir, 'spool'))).to.deep.equal([]);
    expect(await readdir(join(dataDir, 'tmp'))).to.deep.equal([]);
  });
});
