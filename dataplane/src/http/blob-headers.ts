import type { ServerResponse } from 'node:http';
import { formatReprDigest } from '../blob/digest.ts';
import type { BlobInfo } from '../blob/store.ts';

export function etagOf(key: string): string {
  return `"${key}"`;
}

/** Headers every answer about a stored blob carries (GET, HEAD, 304, uploads). */
export function setBlobHeaders(res: ServerResponse, info: BlobInfo): void {
  res.setHeader('ETag', etagOf(info.key));
  res.setHeader('Accept-Ranges', 'bytes');
  // Content-addressed: the bytes behind a key can never change.
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  if (info.sha256 !== undefined) res.setHeader('Repr-Digest', formatReprDigest(info.sha256));
}
