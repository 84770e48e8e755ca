import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import { pipeline } from 'node:stream/promises';
import {
  assertBlobKey,
  contentMd5ToHex,
  formatReprDigest,
  isBlobKey,
  parseReprDigestSha256,
} from '../blob/digest.ts';
import {
  BlobNotFoundError,
  ContentMd5MismatchError,
  InvalidBodyError,
  MethodNotAllowedError,
  RangeNotSatisfiableError,
  UnsupportedMediaTypeError,
} from '../blob/errors.ts';
import type { BlobService } from '../blob/service.ts';
import type { BlobInfo, PutResult } from '../blob/store.ts';
import type { Metrics } from '../metrics.ts';
import { requireScope, type AuthTokens } from './auth.ts';
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

function etagOf(key: string): string {
  return `"${key}"`;
}

function blobJson(info: BlobInfo, created: boolean): Record<string, unknown> {
  return {
    key: info.key,
    size: info.size,
    created,
    ...(info.sha256 === undefined ? {} : { sha256: info.sha256 }),
  };
}

function setBlobHeaders(res: Response, info: BlobInfo): void {
  res.setHeader('ETag', etagOf(info.key));
  res.setHeader('Accept-Ranges', 'bytes');
  // Content-addressed: the bytes behind a key can never change.
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  if (info.sha256 !== undefined) res.setHeader('Repr-Digest', formatReprDigest(info.sha256));
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

  const uploadHeaders = (req: Request) => {
    const contentMd5 = req.get('content-md5');
    const reprDigest = req.get('repr-digest');
    return {
      md5: contentMd5 === undefined ? undefined : contentMd5ToHex(contentMd5),
      sha256:
        reprDigest === undefined ? undefined : (parseReprDigestSha256(reprDigest) ?? undefined),
      size: declaredLength(req, maxBlobBytes),
    };
  };

  const answerUpload = (res: Response, result: PutResult): void => {
    setBlobHeaders(res, result.info);
    res.setHeader('Location', `/v1/blobs/${result.info.key}`);
    res.status(result.created ? 201 : 200).json(blobJson(result.info, result.created));
  };

  const putKeyed: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    const key = assertBlobKey(String(req.params.key));
    const headers = uploadHeaders(req);
    if (headers.md5 !== undefined && headers.md5 !== key) {
      throw new ContentMd5MismatchError(`Content-MD5 is ${headers.md5} but the key is ${key}`);
    }
    const existing = (await blobs.head(key))?.info;
    if (
      existing !== undefined &&
      (headers.sha256 === undefined || existing.sha256 === headers.sha256)
    ) {
      // Already stored and immutable: answer now; Node discards the unread body.
      answerUpload(res, { info: existing, created: false });
      return;
    }
    const body = uploadBody(req, metrics);
    answerUpload(
      res,
      await blobs.put(body, {
        key,
        size: headers.size,
        sha256: headers.sha256,
        maxBytes: maxBlobBytes,
      }),
    );
  };

  const postUnkeyed: RequestHandler = async (req, res) => {
    labelRoute(res, '/v1/blobs');
    const headers = uploadHeaders(req);
    const body = uploadBody(req, metrics);
    answerUpload(
      res,
      await blobs.put(body, {
        key: headers.md5,
        size: headers.size,
        sha256: headers.sha256,
        maxBytes: maxBlobBytes,
      }),
    );
  };

  const getBlob: RequestHandler = async (req, res) => {
    labelRoute(res, BLOB_ROUTE);
    const key = assertBlobKey(String(req.params.key));
    const located = await blobs.head(key);
    if (located === null) throw new BlobNotFoundError(`No blob is stored under ${key}`);
    const { info } = located;
    setBlobHeaders(res, info);
    if (ifNoneMatchHits(req.get('if-none-match'), etagOf(key))) {
      res.status(304).end();
      return;
    }
    const decision = ifRangeAllows(req.get('if-range'), etagOf(key))
      ? decideRange(req.get('range'), info.size)
      : ({ kind: 'whole' } as const);
    if (decision.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${info.size}`);
      throw new RangeNotSatisfiableError(
        `${req.get('range')} lies outside the blob's ${info.size} bytes`,
      );
    }
    const range = decision.kind === 'partial' ? decision.range : undefined;
    res.setHeader('Content-Type', 'application/octet-stream');
    if (range === undefined) {
      res.status(200).setHeader('Content-Length', String(info.size));
    } else {
      res.status(206).setHeader('Content-Length', String(range.end - range.start + 1));
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${info.size}`);
    }
    if (req.method === 'HEAD') {
      res.setHeader('X-Cache', located.cache).end();
      return;
    }
    const served = await blobs.open(key, range);
    if (served === null) throw new BlobNotFoundError(`No blob is stored under ${key}`);
    res.setHeader('X-Cache', served.cache);
    served.stream.on('data', (chunk: Buffer) => metrics.bytesSent.inc(chunk.length));
    try {
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
    .head(read, getBlob)
    .put(write, putKeyed)
    .post(write, putKeyed)
    .delete(write, deleteBlob)
    .all(methodNotAllowed('GET, HEAD, PUT, POST, DELETE'));
  return router;
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
