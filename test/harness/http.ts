import { request, type IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A request with node:http, for what fetch cannot express: a body streamed from a Readable
 * without Content-Length, or headers fetch forbids.
 */
export function rawRequest(
  url: string,
  options: { method: string; headers?: Record<string, string>; body?: Readable | Buffer },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.body === undefined) req.end();
    else if (Buffer.isBuffer(options.body)) req.end(options.body);
    else options.body.pipe(req);
  });
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

/** Reads a problem+json body and checks its media type and status agree with the response. */
export async function problemOf(response: Response): Promise<Problem> {
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('application/problem+json')) {
    throw new Error(`Expected application/problem+json, got '${type}' (${response.status})`);
  }
  const problem = (await response.json()) as Problem;
  if (problem.status !== response.status) {
    throw new Error(`problem.status ${problem.status} differs from HTTP ${response.status}`);
  }
  return problem;
}

/**
 * PUTs `body` to `url` (with its Content-Length) in two writes: the first `splitAt` bytes,
 * then, once `between` has done its part (a DELETE, a signal to the server), the rest.
 * Resolves with the response status; fails if `between` or the request fails.
 */
export function uploadInTwoParts(
  url: string,
  body: Buffer,
  splitAt: number,
  between: () => Promise<void>,
): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = request(url, {
      method: 'PUT',
      headers: { 'Content-Length': String(body.length) },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(body.subarray(0, splitAt), () => {
      between().then(() => req.end(body.subarray(splitAt)), reject);
    });
  });
}

export interface FramedRead {
  status: number;
  /** The Content-Length the server announced. */
  declared: number;
  /** The body bytes received before the response ended or was cut. */
  body: Buffer;
  /** True only when the response ended cleanly with every announced byte. */
  complete: boolean;
}

/**
 * GETs `url` and reports whether the body arrived whole, as a client framing by
 * Content-Length sees it: a server that finds damage mid-stream must cut the transfer,
 * never end it cleanly.
 */
export function framedGet(url: string, headers: Record<string, string> = {}): Promise<FramedRead> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', () => undefined);
      res.on('close', () => {
        const body = Buffer.concat(chunks);
        const declared = Number(res.headers['content-length'] ?? -1);
        resolve({
          status: res.statusCode ?? 0,
          declared,
          body,
          complete: res.complete && body.length === declared,
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** PUTs a generated blob (streamed, never held whole) with its Content-Length; the status. */
export function uploadGenerated(
  url: string,
  blob: { size: number; stream(): Readable },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'PUT', headers: { 'Content-Length': String(blob.size) } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    blob.stream().pipe(req);
  });
}
