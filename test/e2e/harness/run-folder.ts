/**
 * The run folder ($TMPDIR/bc-e2e): the lock that keeps one run per machine, and, at the
 * end, the copy of the component logs and the folder's removal.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from './commands.ts';
import { LOCK_FILE, LOGS_DIR, NODES, RUN_DIR } from './layout.ts';
import { log } from './progress.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the machine-wide lock, waiting while another live run holds it. */
export async function lock(): Promise<void> {
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    // Made each time: the run that held the lock removes the folder as it ends.
    mkdirSync(RUN_DIR, { recursive: true });
    try {
      const fd = openSync(LOCK_FILE, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (code !== 'EEXIST') throw error;
    }
    let owner: number;
    try {
      owner = Number(readFileSync(LOCK_FILE, 'utf8'));
    } catch {
      continue; // Released meanwhile.
    }
    if (!Number.isInteger(owner) || owner <= 0 || !alive(owner)) {
      rmSync(LOCK_FILE, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new Error(`Another end-to-end run (pid ${owner}) holds the machine`);
    log(`waiting for the end-to-end run of pid ${owner} to finish`);
    await sleep(10_000);
  }
}

/** Copies every component's log (control plane, host services, Nodes) to LOGS_DIR. */
export function keepLogs(): void {
  rmSync(LOGS_DIR, { recursive: true, force: true });
  mkdirSync(LOGS_DIR, { recursive: true });
  const copyLogs = (dir: string, prefix: string): void => {
    if (!existsSync(dir)) return;
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.log'))) {
      copyFileSync(join(dir, file), join(LOGS_DIR, `${prefix}${file}`));
    }
  };
  copyLogs(join(RUN_DIR, 'control-plane'), '');
  for (const node of NODES) copyLogs(node.dir, `${node.name}-`);
}

/**
 * Deletes the run folder, refusing while anything is mounted under it (a Pod's hostPath
 * bind mount would otherwise be emptied), and never crossing into another file system.
 */
export function removeRunDir(keep: readonly string[] = []): void {
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => (line.split(' ')[4] ?? '').startsWith(`${RUN_DIR}/`));
  if (mounted) throw new Error('Refusing to delete the run folder: something is mounted under it');
  if (!existsSync(RUN_DIR)) return;
  for (const entry of readdirSync(RUN_DIR)) {
    if (keep.includes(join(RUN_DIR, entry))) continue;
    // Image layers of three Nodes: slow to delete on a busy disk.
    run('rm', ['-rf', '--one-file-system', join(RUN_DIR, entry)], { timeoutMs: 600_000 });
  }
}
