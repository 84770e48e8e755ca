// Over 400 lines: every step of a blob's life on disk (write, fsync, verify, link, directory
// sync, quarantine, restamp) shares the store's locks and the order in which names become
// durable; split apart, that order would be spread over modules. The directory-sync
// bookkeeping (prefix directories, kept handles) is the piece that could leave first.
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type BigIntStats } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat, statfs, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pipelineCallback, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestConflictError, InsufficientStorageError, isNoSpace } from '../blob/errors.ts';
import {
  blobInfo,
  type BlobInfo,
  type BlobRead,
  type BlobStore,
  type ByteRange,
  type ListedBlob,
  type PutOptions,
  type PutResult,
} from '../blob/store.ts';
import { DigestVerifier } from '../blob/verifier.ts';
import {
  digestOfFile,
  readMeta,
  stampMatches,
  stampOf,
  writeFirstMeta,
  writeMeta,
  type BlobMeta,
  type VerifiedStamp,
} from './blob-meta.ts';
import { GroupCommit } from '../group-commit.ts';
import { KeyedQueue } from './keyed-queue.ts';
import { checkedFileRead } from './checked-read.ts';
import {
  PieceChecksumRecorder,
  pieceTable,
  samePieces,
  type PieceChecksums,
} from './piece-checksums.ts';

export interface FileSystemStoreOptions {
  /** Told about every stored copy found damaged and removed (for metrics and logs). */
  onQuarantine?: (key: string, detail: string) => void;
}

/** ENOENT, also as the cause of an error that wraps it (a failed meta write). */
function isNotFound(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return true;
  }
  return false;
}

function isAlreadyExists(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'EEXIST';
}

/** Free space counts as grown back once this much more is available than after a failure. */
const SPACE_REGAINED_BYTES = 1024 * 1024;

/**
 * The durable tier on a local directory: `blobs/<md5[0:2]>/<md5>` plus `<md5>.meta.json`
 * (the SHA-256 when known, and the stamp of the file when it was last verified). Uploads go
 * to `tmp/`, are fsynced and verified, then hard-linked into place: `link` fails when the
 * name exists, so publishing is atomic and never replaces an intact blob.
 *
 * Integrity (docs/decisions/0015, 0055, 0096): whole reads are checked while they stream:
 * each 64 KiB piece against the CRC-32 recorded when the bytes were last verified (by the
 * upload that stored them, or by a read that hashed the file), or, with no such record, the
 * whole file against its MD5 (the last chunk held back until the digest matched; the piece
 * checksums are recorded then). A range is served only from a file whose stamp still
 * matches, else the whole file is verified first. A damaged copy is removed (quarantined),
 * so a re-upload stores the right bytes again.
 */
export class FileSystemStore implements BlobStore {
  private readonly root: string;
  private readonly blobsDir: string;
  private readonly tmpDir: string;
  private readonly options: FileSystemStoreOptions;
  /** Publishing one key is serialized: the meta file and the link must agree. */
  private readonly publishing = new KeyedQueue();
  /** Free bytes measured after the last ENOSPC; set while the disk counts as full. */
  private fullAt: number | undefined;
  /**
   * Concurrent uploads into one directory share its fsync (docs/decisions/0080): an upload
   * whose link came while a sync ran waits for the next one, which starts after it.
   */
  private readonly directorySyncs = new GroupCommit<null, null>({
    run: async (dir, items) => {
      await this.syncDirectory(dir);
      return items.map(() => null);
    },
  });
  /**
   * Open handles of the directories synced so far (at most the 256 prefix directories and
   * `blobs/`), kept so a sync costs one fsync instead of open + fsync + close (0083).
   */
  private readonly directoryHandles = new Map<string, Promise<FileHandle>>();
  /**
   * Prefix directories this process made sure of (made, and their names synced in
   * `blobs/`): an upload into one of them skips the mkdir (docs/decisions/0083).
   */
  private readonly readyPrefixDirs = new Set<string>();

  private constructor(root: string, options: FileSystemStoreOptions) {
    this.root = root;
    this.blobsDir = join(root, 'blobs');
    this.tmpDir = join(root, 'tmp');
    this.options = options;
  }

  /**
   * Opens (creating if needed) a store under `root` and removes temp files of past crashes.
   * The caller must hold the data directory's lock (see data-dir-lock.ts): another process
   * using the directory would lose its uploads under way.
   */
  static async open(root: string, options: FileSystemStoreOptions = {}): Promise<FileSystemStore> {
    const store = new FileSystemStore(root, options);
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(store.blobsDir, { recursive: true });
    return store;
  }

  /**
   * Opens the store of a directory another process may own (its lock held elsewhere), to
   * read it: its temp files are left alone. The backfill command reads the data plane's
   * directory this way.
   */
  static async attach(
    root: string,
    options: FileSystemStoreOptions = {},
  ): Promise<FileSystemStore> {
    const store = new FileSystemStore(root, options);
    await stat(store.blobsDir);
    return store;
  }

  private blobPath(key: string): string {
    return join(this.blobsDir, key.slice(0, 2), key);
  }

  private metaPath(key: string): string {
    return `${this.blobPath(key)}.meta.json`;
  }

  private async statOf(key: string): Promise<BigIntStats | null> {
    try {
      return await stat(this.blobPath(key), { bigint: true });
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async head(key: string): Promise<BlobInfo | null> {
    const stats = await this.statOf(key);
    if (stats === null) return null;
    return blobInfo(key, Number(stats.size), (await readMeta(this.metaPath(key))).sha256);
  }

  /** Like `head`, but null unless the file is unchanged since it was last verified. */
  async headIntact(key: string): Promise<BlobInfo | null> {
    const stats = await this.statOf(key);
    if (stats === null) return null;
    const meta = await readMeta(this.metaPath(key));
    return stampMatches(meta.verified, stats)
      ? blobInfo(key, Number(stats.size), meta.sha256)
      : null;
  }

  async get(key: string, range?: ByteRange): Promise<BlobRead | null> {
    let handle: FileHandle;
    try {
      // Opening first pins the inode: a concurrent delete cannot cut the read short.
      handle = await open(this.blobPath(key), 'r');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
    try {
      const stats = await handle.stat({ bigint: true });
      const meta = await readMeta(this.metaPath(key));
      const info = blobInfo(key, Number(stats.size), meta.sha256);
      if (range === undefined) {
        const table = pieceTable(meta.pieces, info.size);
        if (table === null) return { info, stream: this.verifiedStream(key, handle, stats) };
        // A piece found damaged is confirmed by MD5 before the only copy is removed.
        const confirm = (): Promise<unknown> => this.verifyInPlace(key, handle, stats);
        return { info, ...checkedFileRead(handle, info.size, table, confirm) };
      }
      // A range cannot be checked on its own: serve it only from a file verified and
      // unchanged since, or verify the whole file first.
      if (!stampMatches(meta.verified, stats) && !(await this.verifyInPlace(key, handle, stats))) {
        await handle.close();
        return null;
      }
      const stream = createReadStream('', {
        fd: handle,
        autoClose: true,
        start: range.start,
        end: range.end,
      });
      return { info, stream };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * The whole file through a verifier, recording its piece checksums; a mismatch
   * quarantines it, then fails the stream.
   */
  private verifiedStream(key: string, handle: FileHandle, stats: BigIntStats): Readable {
    const recorder = new PieceChecksumRecorder();
    const verifier = new DigestVerifier(
      { md5: key, size: Number(stats.size) },
      { onMismatch: (error) => this.quarantine(key, stats, error.message) },
    );
    return pipelineCallback(
      createReadStream('', { fd: handle, autoClose: true }),
      recorder,
      verifier,
      (error) => {
        if (!error) void this.restamp(key, stats, recorder.checksums);
      },
    );
  }

  /** Records that `stats` was just verified, with its piece checksums, unless known. */
  private async restamp(key: string, stats: BigIntStats, pieces: PieceChecksums): Promise<void> {
    await this.publishing
      .run(key, async () => {
        const meta = await readMeta(this.metaPath(key));
        if (stampMatches(meta.verified, stats) && samePieces(meta.pieces, pieces)) return;
        const current = await this.statOf(key);
        if (current === null || current.ino !== stats.ino) return;
        const updated: BlobMeta = { ...meta, verified: stampOf(stats), pieces };
        await writeMeta(this.metaPath(key), updated, this.tmpDir);
      })
      .catch(() => undefined);
  }

  /** Hashes the whole open file; stamps it if intact, quarantines it if not. */
  private async verifyInPlace(
    key: string,
    handle: FileHandle,
    stats: BigIntStats,
  ): Promise<boolean> {
    const digest = await digestOfFile(handle);
    if (digest.md5 !== key || digest.size !== Number(stats.size)) {
      await this.quarantine(key, stats, `its MD5 is ${digest.md5} (${digest.size} bytes)`);
      return false;
    }
    await this.restamp(key, stats, digest.pieces);
    return true;
  }

  /** Removes a damaged copy, if the file at the key is still that one. */
  private async quarantine(key: string, damaged: BigIntStats, detail: string): Promise<void> {
    try {
      const current = await this.statOf(key);
      if (current === null || current.ino !== damaged.ino) return;
      await unlink(this.blobPath(key));
      await rm(this.metaPath(key), { force: true });
      this.options.onQuarantine?.(key, detail);
    } catch {
      // Left in place: the next read finds it damaged again and retries.
    }
  }

  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    const verifier = new DigestVerifier({
      md5: options.key,
      size: options.size,
      sha256: options.sha256,
      maxBytes: options.maxBytes,
    });
    // The checksums of the verified bytes as they go to the file (docs/decisions/0096): the
    // first whole read then checks pieces instead of hashing the whole file with MD5 again.
    const recorder = new PieceChecksumRecorder();
    const tmp = join(this.tmpDir, randomUUID());
    try {
      await pipeline(source, verifier, recorder, createWriteStream(tmp, { flush: true }), {
        signal: options.signal,
      });
      const digest = verifier.result;
      if (digest === undefined) throw new Error('The verifier finished without a result');
      const stamp = stampOf(await stat(tmp, { bigint: true }));
      const info = blobInfo(digest.md5, digest.size, digest.sha256);
      const pieces = recorder.checksums;
      const result = await this.publishing.run(info.key, () =>
        this.publish(tmp, info, stamp, pieces),
      );
      this.fullAt = undefined;
      return result;
    } catch (error) {
      if (!isNoSpace(error)) throw error;
      await rm(tmp, { force: true });
      this.fullAt = await this.freeBytes().catch(() => 0);
      throw new InsufficientStorageError('The data directory is full; nothing was stored', {
        cause: error,
      });
    } finally {
      // Linked into place or failed: the temp name goes either way (one unlink, no lstat).
      await removeFile(tmp);
    }
  }

  private async publish(
    tmp: string,
    info: BlobInfo,
    stamp: VerifiedStamp,
    pieces: PieceChecksums,
  ): Promise<PutResult> {
    const existing = await this.settleExisting(info);
    if (existing !== null) return existing;
    const prefixDir = join(this.blobsDir, info.key.slice(0, 2));
    const meta: BlobMeta = { ...pick(info), verified: stamp, pieces };
    try {
      await this.linkNew(tmp, info.key, meta, prefixDir);
    } catch (error) {
      if (!isNotFound(error) || !this.readyPrefixDirs.delete(prefixDir)) throw error;
      // The prefix directory was removed under the running process: make it again.
      await this.linkNew(tmp, info.key, meta, prefixDir);
    }
    // The blob's own bytes were fsynced before it was verified (`flush` on its stream).
    await this.directorySyncs.submit(prefixDir, null);
    return { info, created: true };
  }

  /** Writes the first meta file of `key` and links its verified temp file into place. */
  private async linkNew(
    tmp: string,
    key: string,
    meta: BlobMeta,
    prefixDir: string,
  ): Promise<void> {
    await this.preparePrefixDir(prefixDir);
    // The meta file lands before the blob is visible, so a reader never sees a blob whose
    // verified SHA-256 is missing. Publishing a key is serialized, so it cannot overwrite
    // the meta file of a blob that another upload is linking.
    // Not fsynced on its own: the directory sync after the link makes its name durable
    // with the blob's, and contents lost in a crash read as "nothing known" (0080).
    await writeFirstMeta(this.metaPath(key), meta);
    try {
      await link(tmp, this.blobPath(key));
    } catch (error) {
      if (isAlreadyExists(error)) throw new Error(`Blob ${key} appeared while publishing`);
      throw error;
    }
  }

  /**
   * Makes sure once per process that a prefix directory exists and that its name in
   * `blobs/` is durable (a crash must not lose the directory of an acknowledged blob).
   */
  private async preparePrefixDir(prefixDir: string): Promise<void> {
    if (this.readyPrefixDirs.has(prefixDir)) return;
    // A handle kept from before the directory was removed would sync the removed one.
    await this.forgetDirectoryHandle(prefixDir);
    await mkdir(prefixDir, { recursive: true });
    // Also when it existed: a process killed between its mkdir and this sync left it
    // unsynced. Uploads into fresh directories share the sync of `blobs/`.
    await this.directorySyncs.submit(this.blobsDir, null);
    this.readyPrefixDirs.add(prefixDir);
  }

  private async syncDirectory(path: string): Promise<void> {
    let handle = this.directoryHandles.get(path);
    if (handle === undefined) {
      handle = open(path, 'r');
      this.directoryHandles.set(path, handle);
    }
    try {
      await (await handle).sync();
    } catch (error) {
      await this.forgetDirectoryHandle(path);
      throw error;
    }
  }

  private async forgetDirectoryHandle(path: string): Promise<void> {
    const handle = this.directoryHandles.get(path);
    if (handle === undefined) return;
    this.directoryHandles.delete(path);
    await handle.then((opened) => opened.close()).catch(() => undefined);
  }

  /** Closes the directory handles kept for syncs; the store must not be used afterwards. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.directoryHandles.keys()].map((path) => this.forgetDirectoryHandle(path)),
    );
  }

  /**
   * What an upload of `info` finds when the key is stored already: null when nothing (or
   * only a damaged copy, now removed) is there. Applies the collision rule of
   * docs/decisions/0017: one key holds the first content stored; an upload whose SHA-256
   * differs from it is a conflict, identical bytes never are.
   */
  private async settleExisting(info: BlobInfo): Promise<PutResult | null> {
    const stats = await this.statOf(info.key);
    if (stats === null) return null;
    let meta = await readMeta(this.metaPath(info.key));
    const intact = stampMatches(meta.verified, stats);
    if (!intact || (info.sha256 !== undefined && meta.sha256 === undefined)) {
      const handle = await open(this.blobPath(info.key), 'r');
      try {
        const digest = await digestOfFile(handle);
        if (digest.md5 !== info.key || digest.size !== Number(stats.size)) {
          await this.quarantine(info.key, stats, `its MD5 is ${digest.md5} (${digest.size} bytes)`);
          return null;
        }
        meta = { sha256: digest.sha256, verified: stampOf(stats), pieces: digest.pieces };
        await writeMeta(this.metaPath(info.key), meta, this.tmpDir);
      } finally {
        await handle.close();
      }
    }
    if (info.sha256 !== undefined && meta.sha256 !== undefined && meta.sha256 !== info.sha256) {
      throw new DigestConflictError(
        `Blob ${info.key} is stored with SHA-256 ${meta.sha256}; this upload has ${info.sha256} (an MD5 collision)`,
      );
    }
    return { info: blobInfo(info.key, Number(stats.size), meta.sha256), created: false };
  }

  async delete(key: string): Promise<boolean> {
    return this.publishing.run(key, async () => {
      let removed = true;
      try {
        await unlink(this.blobPath(key));
      } catch (error) {
        if (!isNotFound(error)) throw error;
        removed = false;
      }
      await rm(this.metaPath(key), { force: true });
      return removed;
    });
  }

  async *list(): AsyncIterable<ListedBlob> {
    for (const prefix of await readdir(this.blobsDir)) {
      for (const name of await readdir(join(this.blobsDir, prefix))) {
        if (name.endsWith('.meta.json')) continue;
        const stats = await this.statOf(name);
        if (stats === null) continue;
        const { sha256 } = await readMeta(this.metaPath(name));
        yield { ...blobInfo(name, Number(stats.size), sha256), modifiedMs: Number(stats.mtimeMs) };
      }
    }
  }

  private async freeBytes(): Promise<number> {
    const stats = await statfs(this.root);
    return stats.bavail * stats.bsize;
  }

  /** Fails while the disk counts as full: after an ENOSPC, until space was freed. */
  async check(): Promise<void> {
    await stat(this.tmpDir);
    if (this.fullAt === undefined) return;
    const free = await this.freeBytes();
    if (free >= this.fullAt + SPACE_REGAINED_BYTES) {
      this.fullAt = undefined;
      return;
    }
    throw new InsufficientStorageError(
      `The data directory is full (${free} bytes free); uploads fail until space is freed`,
    );
  }
}

function pick(value: { sha256?: string }): { sha256?: string } {
  return value.sha256 === undefined ? {} : { sha256: value.sha256 };
}

async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}
