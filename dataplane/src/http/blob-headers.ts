import type { ServerResponse } from 'node:http';
import { formatReprDigest } from '../blob/digest.ts';
import type { BlobInfo } from '../blob/store.ts';

export function etagOf(key: string): string {
  return `"${key}"`;
}

/**
 * Headers every answer about a stored blob carries (GET, HEAD, 304, uploads), as a flat
 * `[name, value, ...]` list that `writeHead` takes without further processing.
 */
export function blobHeaderList(info: BlobInfo): string[] {
  const list = [
    'ETag',
    etagOf(info.key),
    'Accept-Ranges',
    'bytes',
    // Content-addressed: the bytes behind a key can never change.
    'Cache-Control',
    'public, max-age=31536000, immutable',
  ];
  if (info.sha256 !== undefined) list.push('Repr-Digest', formatReprDigest(info.sha256));
  return list;
}

/** Sets `blobHeaderList` on a response that more code will add to. */
export function setBlobHeaders(res: ServerResponse, info: BlobInfo): void {
  const list = blobHeaderList(info);
  for (let i = 0; i < list.length; i += 2) res.setHeader(list[i]!, list[i + 1]!);
}
