/**
 * The file tree of an image, collected as a list of entries (nothing is copied until the
 * layer is written): files from the host or from memory, directories with their owners,
 * and symlinks. Host binaries come with the shared libraries `ldd` lists, the dynamic
 * loader included, each at the path the host has it, symlinks on the way kept as symlinks.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { dirname, isAbsolute, join, posix, relative } from 'node:path';

export interface Owner {
  uid?: number;
  gid?: number;
  mode?: number;
}

interface Base {
  /** Absolute path inside the image. */
  path: string;
  uid: number;
  gid: number;
  mode: number;
}
export type Entry =
  | (Base & { type: 'directory' })
  | (Base & { type: 'file'; source: string; size: number })
  | (Base & { type: 'content'; content: Buffer })
  | (Base & { type: 'symlink'; target: string });

/** Files keep only their executable bit from the host, so host umasks never leak in. */
function fileMode(hostMode: number): number {
  return (hostMode & 0o111) !== 0 ? 0o755 : 0o644;
}

export class RootFs {
  private readonly entries = new Map<string, Entry>();

  directory(path: string, owner: Owner = {}): this {
    this.parents(path);
    const existing = this.entries.get(path);
    if (existing !== undefined && existing.type !== 'directory') {
      throw new Error(`${path} is already in the image as a ${existing.type}`);
    }
    this.entries.set(path, {
      type: 'directory',
      path,
      uid: owner.uid ?? 0,
      gid: owner.gid ?? 0,
      mode: owner.mode ?? 0o755,
    });
    return this;
  }

  content(path: string, content: string, owner: Owner = {}): this {
    return this.put({
      type: 'content',
      path,
      content: Buffer.from(content),
      uid: owner.uid ?? 0,
      gid: owner.gid ?? 0,
      mode: owner.mode ?? 0o644,
    });
  }

  symlink(path: string, target: string): this {
    return this.put({ type: 'symlink', path, target, uid: 0, gid: 0, mode: 0o777 });
  }

  /** One host file at `path` in the image (owned by root). */
  copyFile(source: string, path: string): this {
    const stat = lstatSync(source);
    if (!stat.isFile()) throw new Error(`${source} is not a regular file`);
    return this.put({
      type: 'file',
      path,
      source,
      size: stat.size,
      uid: 0,
      gid: 0,
      mode: fileMode(stat.mode),
    });
  }

  /** A host directory tree under `path`; its symlinks must stay inside the tree. */
  copyTree(source: string, path: string, root = source): this {
    this.directory(path);
    for (const name of readdirSync(source).sort()) {
      const from = join(source, name);
      const to = posix.join(path, name);
      const stat = lstatSync(from);
      if (stat.isDirectory()) this.copyTree(from, to, root);
      else if (stat.isFile()) this.copyFile(from, to);
      else if (stat.isSymbolicLink()) {
        const target = readlinkSync(from);
        if (isAbsolute(target) || relative(root, join(dirname(from), target)).startsWith('..')) {
          throw new Error(`${from} links outside the tree (${target})`);
        }
        this.symlink(to, target);
      } else throw new Error(`${from} is neither a file, a directory nor a symlink`);
    }
    return this;
  }

  /**
   * A host path as the host has it: each symlink met on the way (`/lib` → `usr/lib` on a
   * merged-/usr system) is added as a symlink and followed, and the file at the end is
   * copied. So the dynamic loader finds every library where `ldd` found it.
   */
  hostPath(path: string, depth = 0): this {
    if (depth > 40) throw new Error(`Too many symlinks resolving ${path}`);
    const parts = path.split('/').filter((part) => part !== '');
    let current = '';
    for (const [index, part] of parts.entries()) {
      current = `${current}/${part}`;
      const stat = lstatSync(current);
      if (stat.isSymbolicLink()) {
        const target = readlinkSync(current);
        this.symlink(current, target);
        const resolved = isAbsolute(target) ? target : posix.join(dirname(current), target);
        return this.hostPath(posix.join(resolved, ...parts.slice(index + 1)), depth + 1);
      }
      if (index === parts.length - 1) {
        if (stat.isFile()) return this.copyFile(current, current);
        if (stat.isDirectory()) return this.directory(current);
        throw new Error(`${current} is neither a file, a directory nor a symlink`);
      }
      if (!this.entries.has(current)) this.directory(current);
    }
    return this;
  }

  /** A host executable, and every shared library it loads (per `ldd`), at host paths. */
  hostBinary(path: string): this {
    this.hostPath(path);
    for (const library of sharedLibraries(path)) this.hostPath(library);
    return this;
  }

  /** Every entry, parents before children, in a stable order. */
  list(): Entry[] {
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  private put(entry: Entry): this {
    const existing = this.entries.get(entry.path);
    if (existing !== undefined) {
      const same =
        existing.type === entry.type &&
        (entry.type !== 'symlink' || (existing as typeof entry).target === entry.target) &&
        (entry.type !== 'file' || (existing as typeof entry).source === entry.source);
      if (same) return this;
      throw new Error(`${entry.path} is already in the image as a different ${existing.type}`);
    }
    this.parents(entry.path);
    this.entries.set(entry.path, entry);
    return this;
  }

  private parents(path: string): void {
    const parent = posix.dirname(path);
    if (parent === '/' || parent === path) return;
    const existing = this.entries.get(parent);
    if (existing === undefined) this.directory(parent);
    else if (existing.type !== 'directory') {
      throw new Error(`${path}: its parent ${parent} is a ${existing.type} in the image`);
    }
  }
}

/** Absolute paths of the shared libraries `ldd` lists for a binary, the loader included. */
export function sharedLibraries(binary: string): string[] {
  const result = spawnSync('ldd', [binary], { encoding: 'utf8' });
  if (result.status !== 0) {
    if (/not a dynamic executable/.test(result.stderr + result.stdout)) return [];
    throw new Error(`ldd ${binary} failed: ${result.stderr}`);
  }
  const libraries: string[] = [];
  for (const line of result.stdout.split('\n')) {
    if (/=> not found/.test(line)) {
      throw new Error(`${binary} needs ${line.trim()}: install it on this machine first`);
    }
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = /(?:=>\s+)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (match !== null) libraries.push(match[1]!);
  }
  return libraries;
}
