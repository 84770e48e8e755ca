import { expect } from 'chai';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DataDirLockedError,
  LOCK_STALE_MS,
  lockDataDir,
} from '../../dataplane/src/data-dir-lock.ts';

describe('lockDataDir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blobcache-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const holder = (pid: number, host = hostname()) =>
    writeFile(join(dir, 'lock'), JSON.stringify({ pid, host, token: 'theirs' }));

  it('refuses while a live process on this host holds the lock, naming it', async () => {
    await holder(process.ppid);
    const error = await lockDataDir(dir).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error).to.be.instanceOf(DataDirLockedError);
    expect(error?.message).to.contain(`in use by process ${process.ppid}`);
  });

  it('takes over a lock whose process is gone, and releases it', async () => {
    await holder(2 ** 22 + 12_345);
    const lock = await lockDataDir(dir);
    await lock.release();
    expect(await readdir(dir)).to.deep.equal([]);
  });

  it('trusts a lock of another host only while it is refreshed', async () => {
    await holder(1, 'another-host');
    expect(await lockDataDir(dir).catch((e: unknown) => e)).to.be.instanceOf(DataDirLockedError);
    const old = new Date(Date.now() - LOCK_STALE_MS - 1000);
    await utimes(join(dir, 'lock'), old, old);
    const lock = await lockDataDir(dir);
    await lock.release();
  });
});
