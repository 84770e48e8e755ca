import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { BlobService } from '../blob/service.ts';
import type { BlobInfo } from '../blob/store.ts';
import type { Metrics } from '../metrics.ts';
import { grantedScopes, type AuthTokens } from './auth.ts';
import { blobHeaderList } from './blob-headers.ts';
import { SAFE_REQUEST_ID } from './request-context.ts';

const PLAIN_BLOB_GET = /^\/v1\/blobs\/([0-9a-f]{32})$/;

/**
 * Answers the most common request of all — a plain GET of a blob an in-process tier holds —
 * before express sees it: no routing, no middleware chain, no streams (measured: most of the
 * cost of a 4 KiB hit). Anything else, including every error, goes to `next` (the express
 * app), which answers exactly as it would have; the responses are the same either way.
 */
export function fastReads(options: {
  blobs: BlobService;
  metrics: Metrics;
  auth: AuthTokens;
  next: RequestListener;
}): RequestListener {
  const { blobs, metrics, auth, next } = options;
  const peek = blobs.peekInMemory?.bind(blobs);
  if (peek === undefined) return next;
  const tally = metrics.memoryHits;
  const readsProtected = auth.readToken !== undefined;
  // The headers of a blob's answer but its request id, made once per blob, not per request.
  const headerLists = new WeakMap<BlobInfo, string[]>();
  const headerListOf = (info: BlobInfo): string[] => {
    let list = headerLists.get(info);
    if (list === undefined) {
      list = [
        'X-Request-Id',
        '',
        ...blobHeaderList(info, readsProtected),
        'Content-Type',
        'application/octet-stream',
        'Content-Length',
        String(info.size),
        'X-Cache',
        'hit',
      ];
      headerLists.set(info, list);
    }
    return list;
  };
  return (req: IncomingMessage, res: ServerResponse) => {
    const key = req.method === 'GET' ? PLAIN_BLOB_GET.exec(req.url ?? '')?.[1] : undefined;
    const headers = req.headers;
    if (
      key === undefined ||
      headers.range !== undefined ||
      headers['if-none-match'] !== undefined ||
      headers['if-range'] !== undefined
    ) {
      next(req, res);
      return;
    }
    let readable = !readsProtected && headers.authorization === undefined;
    if (!readable) {
      try {
        readable = grantedScopes(headers.authorization, auth).has('read');
      } catch {
        // A bad token: express answers with the problem.
      }
    }
    const served = readable ? peek(key) : null;
    if (served?.chunks === undefined) {
      next(req, res);
      return;
    }
    const started = process.hrtime.bigint();
    const offered = headers['x-request-id'];
    // One flat header list: writeHead takes it as is, without a header object in between.
    const list = headerListOf(served.info).slice();
    list[1] = typeof offered === 'string' && SAFE_REQUEST_ID.test(offered) ? offered : randomUUID();
    res.writeHead(200, list);
    const { chunks } = served;
    // The socket holds our chunks (no copies) until it has written them.
    if (served.release !== undefined) res.once('close', served.release);
    if (chunks.length === 1) {
      // Headers and body leave in one write.
      res.end(chunks[0]);
    } else {
      for (const chunk of chunks) res.write(chunk);
      res.end();
    }
    tally.answered(served.info.size, Number(process.hrtime.bigint() - started) / 1e9);
  };
}
