import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  link,
  mkdir,
  open,
  readFile,
  readdir,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestConflictError } from '../blob/errors.ts';
import {
  blobInfo,
  type BlobInfo,
  type BlobRead,
  type BlobStore,
  type ByteRange,
  type PutOptions,
  type PutResult,
} from '../blob/store.ts';
import { DigestVerifier } from '../blob/verifier.ts';

interface BlobMeta {
  sha256?: string;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function isAlreadyExists(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EEXIST';
}

/**
 * The durable tier on a local directory: `blobs/<md5[0:2]>/<md5>` plus an optional
 * `<md5>.meta.json` (the verified SHA-256). Uploads go to `tmp/`, are fsynced and verified,
 * then hard-linked into place: `link` fails when the name exists, so publishing is atomic
 * and never replaces a blob, and a concurrent second upload learns it was not first.
 */
export class FileSystemStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly tmpDir: string;

  private constructor(root: string) {
    this.blobsDir = join(root, 'blobs');
    this.tmpDir = join(root, 'tmp');
  }

  /** Opens (creating if needed) a store under `root` and removes temp files of past crashes. */
  static async open(root: string): Promise<FileSystemStore> {
    const store = new FileSystemStore(root);
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(store.blobsDir, { recursive: true });
    return store;
  }

  private blobPath(key: string): string {
    return join(this.blobsDir, key.slice(0, 2), key);
  }

  private metaPath(key: string): string {
    return `${this.blobPath(key)}.meta.json`;
  }

  private async readMeta(key: string): Promise<BlobMeta> {
    try {
      return JSON.parse(await readFile(this.metaPath(key), 'utf8')) as BlobMeta;
    } catch (error) {
      if (isNotFound(error)) return {};
      throw error;
    }
  }

  private infoOf(key: string, size: number, meta: BlobMeta): BlobInfo {
    return blobInfo(key, size, meta.sha256);
  }

  async head(key: string): Promise<BlobInfo | null> {
    try {
      const stats = await stat(this.blobPath(key));
      return this.infoOf(key, stats.size, await this.readMeta(key));
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async get(key: string, range?: ByteRange): Promise<BlobRead | null> {
    let handle;
    try {
      // Opening first pins the inode: a concurrent delete cannot cut the read short.
      handle = await open(this.blobPath(key), 'r');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
    try {
      const { size } = await handle.stat();
      const meta = await this.readMeta(key);
      const stream = createReadStream('', {
        fd: handle,
        autoClose: true,
        ...(range === undefined ? {} : { start: range.start, end: range.end }),
      });
      return { info: this.infoOf(key, size, meta), stream };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    const verifier = new DigestVerifier({
      md5: options.key,
      size: options.size,
      sha256: options.sha256,
      maxBytes: options.maxBytes,
    });
    const tmp = join(this.tmpDir, randomUUID());
    try {
      await pipeline(source, verifier, createWriteStream(tmp, { flush: true }), {
        signal: options.signal,
      });
      const digest = verifier.result;
      if (digest === undefined) throw new Error('The verifier finished without a result');
      return await this.publish(tmp, { key: digest.md5, size: digest.size, ...pick(digest) });
    } finally {
      await rm(tmp, { force: true });
    }
  }

  private async publish(tmp: string, info: BlobInfo): Promise<PutResult> {
    const target = this.blobPath(info.key);
    await mkdir(join(this.blobsDir, info.key.slice(0, 2)), { recursive: true });
    const stored = await this.readMeta(info.key);
    if (info.sha256 !== undefined && stored.sha256 !== undefined && stored.sha256 !== info.sha256) {
      throw new DigestConflictError(
        `Blob ${info.key} is stored with SHA-256 ${stored.sha256}; this upload has ${info.sha256} (an MD5 collision)`,
      );
    }
    if (info.sha256 !== undefined && stored.sha256 === undefined) {
      // The meta file lands before the blob is visible, so a reader never sees a blob whose
      // verified SHA-256 is missing.
      await writeFile(this.metaPath(info.key), JSON.stringify({ sha256: info.sha256 }), {
        flush: true,
      });
    }
    try {
      await link(tmp, target);
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      return { info: { ...info, ...pick(stored) }, created: false };
    }
    await syncDirectory(join(this.blobsDir, info.key.slice(0, 2)));
    return { info, created: true };
  }

  async delete(key: string): Promise<boolean> {
    let removed = true;
    try {
      await unlink(this.blobPath(key));
    } catch (error) {
      if (!isNotFound(error)) throw error;
      removed = false;
    }
    await rm(this.metaPath(key), { force: true });
    return removed;
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const prefix of await readdir(this.blobsDir)) {
      for (const name of await readdir(join(this.blobsDir, prefix))) {
        if (name.endsWith('.meta.json')) continue;
        const info = await this.head(name);
        if (info !== null) yield info;
      }
    }
  }

  async check(): Promise<void> {
    await stat(this.tmpDir);
  }
}

function pick(value: { sha256?: string }): { sha256?: string } {
  return value.sha256 === undefined ? {} : { sha256: value.sha256 };
}

async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
