import type { ServerResponse } from 'node:http';
import { formatReprDigest } from '../blob/digest.ts';
import type { BlobInfo } from '../blob/store.ts';

export function etagOf(key: string): string {
  return `"${key}"`;
}

/**
 * Content-addressed: the bytes behind a key never change, so any cache may keep them for
 * good. But when reads need a token, a shared cache must not hand them to whoever asks
 * next (RFC 9111 §3.5: `public` would allow exactly that for authenticated requests).
 */
export function cacheControl(readsProtected: boolean): string {
  return readsProtected
    ? 'private, max-age=31536000, immutable'
    : 'public, max-age=31536000, immutable';
}

/**
 * Headers every answer about a stored blob carries (GET, HEAD, 304, uploads), as a flat
 * `[name, value, ...]` list that `writeHead` takes without further processing.
 */
export function blobHeaderList(info: BlobInfo, readsProtected: boolean): string[] {
  const list = [
    'ETag',
    etagOf(info.key),
    'Accept-Ranges',
    'bytes',
    'Cache-Control',
    cacheControl(readsProtected),
  ];
  if (info.sha256 !== undefined) list.push('Repr-Digest', formatReprDigest(info.sha256));
  return list;
}

/** Sets `blobHeaderList` on a response that more code will add to. */
export function setBlobHeaders(res: ServerResponse, info: BlobInfo, readsProtected: boolean): void {
  const list = blobHeaderList(info, readsProtected);
  for (let i = 0; i < list.length; i += 2) res.setHeader(list[i]!, list[i + 1]!);
}
