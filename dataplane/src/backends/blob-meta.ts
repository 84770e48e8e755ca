import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import { readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isPieceChecksums, PieceChecksummer, type PieceChecksums } from './piece-checksums.ts';

/**
 * What a blob file looked like when its bytes were last verified against its key. A file
 * whose size, inode and modification time still match was not written since (see
 * docs/decisions/0015); any write through the filesystem changes the mtime.
 */
export interface VerifiedStamp {
  size: number;
  ino: string;
  mtimeNs: string;
}

/** `<md5>.meta.json` beside a blob. */
export interface BlobMeta {
  /** Base64 SHA-256 of the stored bytes, once known (sent by an uploader, or computed). */
  sha256?: string;
  /** Absent for files never verified here (or whose meta file was lost or damaged). */
  verified?: VerifiedStamp;
  /**
   * CRC-32 of each 64 KiB piece, recorded when the bytes were verified: whole reads check
   * them instead of hashing the file again (docs/decisions/0055).
   */
  pieces?: PieceChecksums;
}

export function stampOf(stats: BigIntStats): VerifiedStamp {
  return { size: Number(stats.size), ino: String(stats.ino), mtimeNs: String(stats.mtimeNs) };
}

export function stampMatches(stamp: VerifiedStamp | undefined, stats: BigIntStats): boolean {
  if (stamp === undefined) return false;
  const now = stampOf(stats);
  return stamp.size === now.size && stamp.ino === now.ino && stamp.mtimeNs === now.mtimeNs;
}

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Reads a meta file. A missing, empty or unparseable one (a crash or a full disk in the
 * days before meta writes were atomic) reads as "nothing known": the blob is verified again
 * before it is trusted, and its SHA-256 recomputed when someone needs it.
 */
export async function readMeta(path: string): Promise<BlobMeta> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isNotFound(error)) return {};
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object') return {};
    const { sha256, verified, pieces } = parsed as BlobMeta;
    return {
      ...(typeof sha256 === 'string' ? { sha256 } : {}),
      ...(typeof verified?.mtimeNs === 'string' ? { verified } : {}),
      ...(isPieceChecksums(pieces) ? { pieces } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * Writes a meta file atomically, like blob files: a fsynced temp file in `tmpDir` (same
 * filesystem) renamed into place. A crash or ENOSPC leaves the old file or none, never a
 * partial one.
 */
export async function writeMeta(path: string, meta: BlobMeta, tmpDir: string): Promise<void> {
  const tmp = join(tmpDir, `${randomUUID()}.meta`);
  try {
    await writeFile(tmp, JSON.stringify(meta), { flush: true });
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw metaWriteFailed(path, error);
  }
}

/**
 * Writes the first meta file of a blob that is not linked yet, in place and not fsynced
 * (docs/decisions/0080, 0083): no reader opens a meta file before its blob exists, and the
 * caller's directory sync makes the name durable with the blob's. A crash may leave it
 * empty or cut short, which never parses and so reads as "nothing known"; an ENOSPC
 * removes it. Truncates what a crashed earlier upload of the key left.
 */
export async function writeFirstMeta(path: string, meta: BlobMeta): Promise<void> {
  try {
    await writeFile(path, JSON.stringify(meta));
  } catch (error) {
    await rm(path, { force: true });
    throw metaWriteFailed(path, error);
  }
}

function metaWriteFailed(path: string, error: unknown): Error {
  return new Error(`Failed to write the meta file ${path}: ${(error as Error).message}`, {
    cause: error,
  });
}

export interface FileDigest {
  md5: string;
  sha256: string;
  size: number;
  pieces: PieceChecksums;
}

/** MD5, SHA-256 and piece checksums of an open file, read as a stream from its start. */
export async function digestOfFile(handle: FileHandle): Promise<FileDigest> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  const pieces = new PieceChecksummer();
  let size = 0;
  await pipeline(
    createReadStream('', { fd: handle, start: 0, autoClose: false }),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        md5.update(chunk);
        sha256.update(chunk);
        pieces.update(chunk);
        size += chunk.length;
        callback();
      },
    }),
  );
  return {
    md5: md5.digest('hex'),
    sha256: sha256.digest('base64'),
    size,
    pieces: pieces.result(),
  };
}
