/**
 * The kubelets' cgroup roots (`/bc-e2e-<zone>` in every cgroup v1 controller): made before
 * a kubelet starts, since it creates none of its own, and found by their prefix at teardown.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CGROUP_CONTROLLERS, CGROUP_ROOT, PREFIX } from './layout.ts';

/** The kubelet creates none of its cgroup root; it must exist in every v1 controller. */
export function makeCgroupRoot(name: string): void {
  for (const controller of CGROUP_CONTROLLERS) {
    const dir = join(CGROUP_ROOT, controller, name);
    mkdirSync(dir, { recursive: true });
    if (controller === 'cpuset') {
      // A new cpuset starts empty, and no task may join an empty cpuset.
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        copyFileSync(join(CGROUP_ROOT, controller, file), join(dir, file));
      }
    }
  }
}

/**
 * A cgroup folder's subfolders; none once it is gone. Containers' cgroups are removed by
 * containerd while this walks them (a Node powered off under load), so a folder listed a
 * moment ago may be gone when it is read.
 */
function subfolders(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** The harness's cgroup folders in every controller, deepest first; only `root`'s if given. */
export function harnessCgroups(root?: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of subfolders(dir)) {
      walk(join(dir, entry));
      found.push(join(dir, entry));
    }
  };
  for (const controller of readdirSync(CGROUP_ROOT)) {
    const dir = join(CGROUP_ROOT, controller);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !entry.name.startsWith(`${PREFIX}-`)) continue;
      if (root !== undefined && entry.name !== root) continue;
      walk(join(dir, entry.name));
      found.push(join(dir, entry.name));
    }
  }
  return found;
}

/** Processes in a cgroup folder (none once it is gone). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Removes the harness's cgroup folders, deepest first, once their tasks have exited. */
export async function removeCgroups(): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const left = harnessCgroups();
    if (left.length === 0) return;
    for (const dir of left) {
      try {
        rmdirSync(dir);
      } catch {
        // Busy for a moment after its last task exited; next round.
      }
    }
    await sleep(100);
  }
  throw new Error(`cgroups left: ${harnessCgroups().join(', ')}`);
}
