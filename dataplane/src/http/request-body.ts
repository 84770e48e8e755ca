import type { Request } from 'express';
import { PassThrough, type Readable } from 'node:stream';
import { BlobTooLargeError, ClientAbortedError, InvalidHeaderError } from '../blob/errors.ts';
import type { Metrics } from '../metrics.ts';

/**
 * The upload body as a stream that the tiers may consume and destroy freely. The request
 * itself is never destroyed by them (that would cut the socket before a 4xx could be
 * sent); a client that goes away mid-upload fails the stream with `ClientAbortedError`.
 *
 * The stream has an `'error'` listener from the start: a client can fail its request
 * (reset, malformed chunked body, short body) before any tier consumes the stream — the
 * tiers `await` lookups first, or answer without reading at all — and an `'error'` with
 * no listener would take the whole process down. Consumers still see the error: a
 * `pipeline` over an errored stream fails with it.
 */
export function uploadBody(req: Request, metrics: Metrics): Readable {
  const body = new PassThrough();
  // Counted where it is raised (below); whoever consumes the stream reports it.
  body.on('error', () => undefined);
  const abort = (cause?: unknown): void => {
    if (!req.complete) {
      metrics.clientErrors.inc({ reason: 'upload-aborted' });
      body.destroy(
        new ClientAbortedError('The client closed the connection mid-upload', { cause }),
      );
    }
  };
  req.once('error', abort);
  req.once('close', () => abort());
  req.on('data', (chunk: Buffer) => metrics.bytesReceived.inc(chunk.length));
  req.pipe(body);
  return body;
}

/**
 * The declared body length, refusing at once what can never fit (before reading a byte).
 * Undefined for chunked uploads, whose size is enforced while streaming.
 */
export function declaredLength(req: Request, maxBytes: number): number | undefined {
  const header = req.get('content-length');
  if (header === undefined) return undefined;
  if (!/^\d+$/.test(header))
    throw new InvalidHeaderError(`Content-Length '${header}' is not a number`);
  const size = Number(header);
  if (size > maxBytes) {
    throw new BlobTooLargeError(`The blob is ${size} bytes; the limit is ${maxBytes} bytes`);
  }
  return size;
}
