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
 * Empties the spool directory: what is there was left by a process that crashed (the
 * caller holds the data directory's lock, so no other process is spooling into it).
 */
export async function cleanSpool(directory: string): Promise<void> {
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
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
