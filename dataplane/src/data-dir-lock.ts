import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, utimes, writeFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/** A lock not refreshed for this long belongs to a process that is gone. */
export const LOCK_STALE_MS = 30_000;
const REFRESH_MS = 10_000;

interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

/** Another live process holds the data directory. */
export class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  /** Releases the lock (removes the file if it is still ours). */
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

/**
 * Takes `<dir>/lock` for this process, or fails with a message naming the holder. One data
 * directory serves one process: a second one would empty `tmp/` and `spool/` under the
 * first one's uploads and keep serving blobs the first one deleted from its memory tier.
 *
 * Node has no flock(2), so the lock is a file holding the owner's pid, host and a token,
 * refreshed (mtime) every 10 s. It is taken over when its owner is gone: on this host, a
 * pid that no longer runs (or is our own, as after a container restart); anywhere, a file
 * not refreshed for `LOCK_STALE_MS`.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'lock');
  const me: LockOwner = { pid: process.pid, host: hostname(), token: randomUUID() };
  const held = await readOwner(path);
  if (held !== null) {
    const age =
      Date.now() -
      (await stat(path).then(
        (s) => s.mtimeMs,
        () => 0,
      ));
    const sameHost = held.host === me.host;
    const gone = sameHost ? held.pid === me.pid || !isAlive(held.pid) : age > LOCK_STALE_MS;
    if (!gone && age <= LOCK_STALE_MS) {
      throw new DataDirLockedError(
        `The data directory ${dir} is in use by process ${held.pid} on ${held.host} (lock file ${path}); stop that process or set another BLOBCACHE_DATA_DIR`,
      );
    }
  }
  // Written aside and renamed: whoever renames last owns it, and checks that below.
  const tmp = `${path}.${me.token}`;
  await writeFile(tmp, JSON.stringify(me), { flush: true });
  await rename(tmp, path);
  const owner = await readOwner(path);
  if (owner?.token !== me.token) {
    throw new DataDirLockedError(
      `The data directory ${dir} was locked by process ${owner?.pid} at the same time; stop one of them`,
    );
  }
  const refresh = setInterval(() => {
    const now = new Date();
    void utimes(path, now, now).catch(() => undefined);
  }, REFRESH_MS);
  refresh.unref();
  return {
    async release() {
      clearInterval(refresh);
      if ((await readOwner(path))?.token === me.token) await rm(path, { force: true });
    },
  };
}
