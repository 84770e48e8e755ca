import { createHash } from 'node:crypto';
import { InvalidHeaderError, InvalidKeyError } from './errors.ts';

const BLOB_KEY = /^[0-9a-f]{32}$/;

/** True for a blob key: the lowercase hex MD5 of the blob's bytes. */
export function isBlobKey(value: string): boolean {
  return BLOB_KEY.test(value);
}

export function assertBlobKey(value: string): string {
  if (!isBlobKey(value)) {
    throw new InvalidKeyError(
      `'${value.slice(0, 80)}' is not a blob key: expected the lowercase hex MD5 of the content (32 characters 0-9a-f)`,
    );
  }
  return value;
}

export function md5Hex(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeBase64Digest(value: string, bytes: number, header: string): Buffer {
  const decoded = BASE64.test(value) ? Buffer.from(value, 'base64') : Buffer.alloc(0);
  if (decoded.length !== bytes) {
    throw new InvalidHeaderError(
      `${header} must be the base64 encoding of a ${bytes}-byte digest, got '${value.slice(0, 80)}'`,
    );
  }
  return decoded;
}

/** Decodes a `Content-MD5` header (base64 of the 16 digest bytes) into lowercase hex. */
export function contentMd5ToHex(header: string): string {
  return decodeBase64Digest(header.trim(), 16, 'Content-MD5').toString('hex');
}

/**
 * Extracts the `sha-256` member of a `Repr-Digest` header (RFC 9530, a structured-field
 * dictionary of byte sequences) as base64. Other algorithms are ignored as the RFC asks;
 * returns null when the header names no sha-256.
 */
export function parseReprDigestSha256(header: string): string | null {
  let found: string | null = null;
  for (const member of header.split(',')) {
    const trimmed = member.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    const name = (eq < 0 ? trimmed : trimmed.slice(0, eq)).trim().toLowerCase();
    if (name !== 'sha-256') continue;
    const value = eq < 0 ? '' : trimmed.slice(eq + 1).trim();
    const match = /^:([A-Za-z0-9+/]+={0,2}):$/.exec(value);
    if (match?.[1] === undefined) {
      throw new InvalidHeaderError(
        `Repr-Digest sha-256 must be a byte sequence such as sha-256=:<base64>:, got '${value.slice(0, 80)}'`,
      );
    }
    found = decodeBase64Digest(match[1], 32, 'Repr-Digest sha-256').toString('base64');
  }
  return found;
}

export function formatReprDigest(sha256Base64: string): string {
  return `sha-256=:${sha256Base64}:`;
}
