import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import { pipeline } from 'node:stream/promises';
import {
  assertBlobKey,
  contentMd5ToHex,
  isBlobKey,
  parseReprDigestSha256,
} from '../blob/digest.ts';
import {
  BlobNotFoundError,
  ContentMd5MismatchError,
  InvalidBodyError,
  InvalidHeaderError,
  MethodNotAllowedError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  UnsupportedMediaTypeError,
} from '../blob/errors.ts';
import type { BlobService, Durability, UploadOptions } from '../blob/service.ts';
import type { BlobInfo, ByteRange } from '../blob/store.ts';
import type { Metrics } from '../metrics.ts';
import { requireScope, type AuthTokens } from './auth.ts';
import { etagOf, setBlobHeaders } from './blob-headers.ts';
import { writePieces } from './piece-writer.ts';
import { decideRange, ifNoneMatchHits, ifRangeAllows } from './range.ts';
import { labelRoute, requestContext } from './request-context.ts';
import { declaredLength, uploadBody } from './request-body.ts';

export interface BlobRoutesOptions {
  blobs: BlobService;
  metrics: Metrics;
  auth: AuthTokens;
  /** Largest blob accepted, in bytes. */
  maxBlobBytes: number;
  /** Most keys accepted by one `POST /v1/blobs/missing`. */
  maxMissingKeys: number;
}

const BLOB_ROUTE = '/v1/blobs/{md5}';

function blobJson(info: BlobInfo, created: boolean): Record<string, unknown> {
  return {
    key: info.key,
    size: info.size,
    created,
    ...(info.sha256 === undefined ? {} : { sha256: info.sha256 }),
  };
}

function methodNotAllowed(allow: string): RequestHandler {
  return (req, res) => {
    res.setHeader('Allow', allow);
    throw new MethodNotAllowedError(`${req.method} is not allowed here; use ${allow}`);
  };
}

export function blobRoutes(options: BlobRoutesOptions): Router {
  const { blobs, metrics, auth, maxBlobBytes } = options;
  const router = express.Router();
  const read = requireScope('read', auth);
  const write = requireScope('write', auth);
  const readsProtected = auth.readToken !== undefined;

  const uploadOptions = (req: Request, key: string | undefined): UploadOptions => {
    const contentMd5 = req.get('content-md5');
    const reprDigest = req.get('repr-digest');
    const md5 = contentMd5 === undefined ? undefined : contentMd5ToHex(contentMd5);
    if (key !== undefined && md5 !== undefined && md5 !== key) {
      throw new ContentMd5MismatchError(`Content-MD5 is ${md5} but the key is ${key}`);
    }
    return {
      key: key ?? md5,
      sha256:
        reprDigest === undefined ? undefined : (parseReprDigestSha256(reprDigest) ?? undefined),
      size: declaredLength(req, maxBlobBytes),
      maxBytes: maxBlobBytes,
      durability: durabilityOf(req),
    };
  };

  /** `If-None-Match: *` (or the blob's ETag) on an upload: only if it is not stored yet. */
  const refuseIfStored = async (req: Request, key: string | undefined): Promise<void> => {
    const header = req.get('if-none-match');
    if (header === undefined || key === undefined) return;
    if (!ifNoneMatchHits(header, etagOf(key))) return;
    if ((await blobs.head(key)) !== null) {
      throw new PreconditionFailedError(`Blob ${key} is already stored (If-None-Match: ${header})`);
    }
  };

  const upload = async (req: Request, res: Response, key: string | undefined): Promise<void> => {
    const options = uploadOptions(req, key);
    await refuseIfStored(req, options.key);
    const result = await blobs.put(uploadBody(req, metrics), options);
    if (!req.complete) {
      // Answered without reading the body (the blob was already stored): drain the rest so
      // the connection stays usable for the client's next request.
      req.unpipe();
      req.resume();
    }
    setBlobHeaders(res, result.info, readsProtected);
    res.setHeader('Location', `/v1/blobs/${result.info.key}`);
    res.status(result.created ? 201 : 200).json(blobJson(result.info, result.created));
  };

  const putKeyed: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    await upload(req, res, assertBlobKey(String(req.params.key)));
  };

  const postUnkeyed: RequestHandler = async (req, res) => {
    labelRoute(res, '/v1/blobs');
    await upload(req, res, undefined);
  };

  /** Decides status and range from what is known of the blob; null when already answered. */
  const prepareBlobResponse = (
    req: Request,
    res: Response,
    info: BlobInfo,
  ): { range?: ByteRange } | null => {
    setBlobHeaders(res, info, readsProtected);
    if (ifNoneMatchHits(req.get('if-none-match'), etagOf(info.key))) {
      res.status(304).end();
      return null;
    }
    const decision = ifRangeAllows(req.get('if-range'), etagOf(info.key))
      ? decideRange(req.get('range'), info.size)
      : ({ kind: 'whole' } as const);
    if (decision.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${info.size}`);
      throw new RangeNotSatisfiableError(
        `${req.get('range')} lies outside the blob's ${info.size} bytes`,
      );
    }
    return decision.kind === 'partial' ? { range: decision.range } : {};
  };

  const setBodyHeaders = (res: Response, info: BlobInfo, range: ByteRange | undefined): void => {
    res.setHeader('Content-Type', 'application/octet-stream');
    if (range === undefined) {
      res.status(200).setHeader('Content-Length', String(info.size));
    } else {
      res.status(206).setHeader('Content-Length', String(range.end - range.start + 1));
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
    }
  };

  const headBlob: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    const key = assertBlobKey(String(req.params.key));
    const located = await blobs.head(key);
    if (located === null) throw new BlobNotFoundError(`No blob is stored under ${key}`);
    const prepared = prepareBlobResponse(req, res, located.info);
    if (prepared === null) return;
    setBodyHeaders(res, located.info, prepared.range);
    res.setHeader('X-Cache', located.cache).end();
  };

  const getBlob: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    const key = assertBlobKey(String(req.params.key));
    let range: ByteRange | undefined;
    // A plain GET opens the blob straight away (one lookup, and on a miss a single read of
    // the durable tier); conditions and ranges need the blob's size first.
    if (req.get('range') !== undefined || req.get('if-none-match') !== undefined) {
      const located = await blobs.head(key);
      if (located === null) throw new BlobNotFoundError(`No blob is stored under ${key}`);
      const prepared = prepareBlobResponse(req, res, located.info);
      if (prepared === null) return;
      range = prepared.range;
    }
    const served = await blobs.open(key, range);
    if (served === null) throw new BlobNotFoundError(`No blob is stored under ${key}`);
    setBlobHeaders(res, served.info, readsProtected);
    setBodyHeaders(res, served.info, range);
    res.setHeader('X-Cache', served.cache);
    if (served.chunks !== undefined) {
      // Already in memory: write it out directly, without stream machinery (the hot path
      // for small blobs). The socket holds references, not copies, until it is done.
      if (served.release !== undefined) res.once('close', served.release);
      let bytes = 0;
      for (const chunk of served.chunks) {
        bytes += chunk.length;
        res.write(chunk);
      }
      metrics.bytesSent.inc(bytes);
      res.end();
      return;
    }
    // A miss streams behind a fill whose first bytes may take a moment (a small blob's only
    // chunk, or a range's last byte, waits until the whole blob matched its key): answer the
    // status now, so that a failure found later is a cut transfer, as on any streamed read.
    // Only then: flushing the status of a stream that starts at once (the embedded tiers'
    // read of a file) kept stalled readers of it from being cut as idle.
    if (served.behindFill === true) res.flushHeaders();
    try {
      if (served.source !== undefined) {
        // Large reads of files: into reused buffers, without stream machinery.
        await writePieces(res, served.source, (bytes) => metrics.bytesSent.inc(bytes));
        return;
      }
      served.stream.on('data', (chunk: Buffer) => metrics.bytesSent.inc(chunk.length));
      await pipeline(served.stream, res);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
        requestContext(res).logger.info('Stopped streaming: the client went away', { key });
        return;
      }
      throw error;
    }
  };

  const deleteBlob: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    const key = assertBlobKey(String(req.params.key));
    await blobs.delete(key);
    res.status(204).end();
  };

  const missing: RequestHandler = async (req, res) => {
    labelRoute(res, '/v1/blobs/missing');
    if (!req.is('application/json')) {
      throw new UnsupportedMediaTypeError(
        'Send the keys as a JSON array with Content-Type: application/json',
      );
    }
    const keys = parseKeyList(req.body, options.maxMissingKeys);
    res.status(200).json(await blobs.missing(keys));
  };

  router.post('/v1/blobs/missing', read, express.json({ limit: '2mb', strict: false }), missing);
  router.all('/v1/blobs/missing', methodNotAllowed('POST'));
  router.post('/v1/blobs', write, postUnkeyed);
  router.all('/v1/blobs', methodNotAllowed('POST'));
  router
    .route('/v1/blobs/:key')
    .get(read, getBlob)
    .head(read, headBlob)
    .put(write, putKeyed)
    .post(write, putKeyed)
    .delete(write, deleteBlob)
    .all(methodNotAllowed('GET, HEAD, PUT, POST, DELETE'));
  return router;
}

const DURABILITY_HEADER = 'blobcache-durability';

/** The per-request durability override (`Blobcache-Durability: Sync` or `WriteBehind`). */
function durabilityOf(req: Request): Durability | undefined {
  const value = req.get(DURABILITY_HEADER);
  if (value === undefined) return undefined;
  if (value === 'Sync' || value === 'WriteBehind') return value;
  throw new InvalidHeaderError(
    `Blobcache-Durability must be Sync or WriteBehind, got '${value.slice(0, 40)}'`,
  );
}

/** Validates the body of `POST /v1/blobs/missing`: a JSON array of blob keys, deduplicated. */
export function parseKeyList(body: unknown, maxKeys: number): string[] {
  if (!Array.isArray(body))
    throw new InvalidBodyError('The body must be a JSON array of blob keys');
  if (body.length > maxKeys) {
    throw new InvalidBodyError(`At most ${maxKeys} keys per call; got ${body.length}`);
  }
  body.forEach((key: unknown, index) => {
    if (typeof key !== 'string' || !isBlobKey(key)) {
      throw new InvalidBodyError(
        `Element ${index} (${JSON.stringify(key)?.slice(0, 80)}) is not a blob key (32 lowercase hex characters)`,
      );
    }
  });
  return [...new Set(body as string[])];
}
