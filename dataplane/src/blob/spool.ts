import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestVerifier, type VerifiedDigest, type VerifierExpectations } from './verifier.ts';

export interface SpooledBlob extends VerifiedDigest {
  /** A fresh stream over the spooled bytes. */
  open(): Readable;
  /** Deletes the spool file. */
  remove(): Promise<void>;
}

/**
 * Writes an upload whose key is not known yet to a local file while hashing it, so that it
 * can then be stored under its MD5 (a Redis key needs its hash tag before the first byte).
 */
export async function spoolToDisk(
  source: Readable,
  directory: string,
  expected: VerifierExpectations,
): Promise<SpooledBlob> {
  await mkdir(directory, { recursive: true });
  const path = join(directory, randomUUID());
  const verifier = new DigestVerifier(expected);
  try {
    await pipeline(source, verifier, createWriteStream(path));
  } catch (error) {
    await rm(path, { force: true });
    throw error;
  }
  const digest = verifier.result!;
  return { ...digest, open: () => createReadStream(path), remove: () => rm(path, { force: true }) };
}
