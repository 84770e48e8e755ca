import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { problemBody } from './problem-body.ts';
import type { BlobcacheError } from '../blob/errors.ts';

/**
 * How long a connection answered before its request was read keeps reading (and
 * discarding) what the client still sends. Like nginx's lingering close: a client that
 * writes its whole body before reading (Python's http.client, many simple clients) must
 * finish writing to see the answer; closing at once would reach it as a reset, with the
 * answer lost in the kernel's discarded receive buffer.
 */
export const LINGER_MAX_MS = 30_000;
/** A lingering client that sends nothing for this long is cut. */
export const LINGER_IDLE_MS = 5_000;

const lingering = new WeakSet<Socket>();

/** True once the connection is closing; requests still parsed on it are not served. */
export function isLingering(socket: Socket): boolean {
  return lingering.has(socket);
}

/**
 * Closes our side (FIN after whatever is queued), keeps reading and discarding what the
 * client sends, and destroys the socket once the client closed its side, went quiet for
 * `LINGER_IDLE_MS`, or after `LINGER_MAX_MS`. The HTTP parser is cut off the socket first:
 * nothing more on this connection is a request to serve.
 */
export function lingerClose(socket: Socket): void {
  if (lingering.has(socket)) return;
  lingering.add(socket);
  socket.on('error', () => undefined);
  const destroy = (): void => {
    clearTimeout(overall);
    clearTimeout(idle);
    socket.destroy();
  };
  const overall = setTimeout(destroy, LINGER_MAX_MS);
  let idle = setTimeout(destroy, LINGER_IDLE_MS);
  overall.unref();
  idle.unref();
  // Node's HTTP server feeds the parser from 'data'; with its listener gone the bytes are
  // only counted as activity and dropped.
  socket.removeAllListeners('data');
  socket.on('data', () => {
    clearTimeout(idle);
    idle = setTimeout(destroy, LINGER_IDLE_MS);
    idle.unref();
  });
  socket.once('end', destroy);
  socket.once('close', destroy);
  socket.end();
  socket.resume();
  restartReading(socket);
}

interface StreamHandle {
  reading?: boolean;
  readStart?: () => number;
}

/**
 * Node's HTTP server lets its parser read the socket natively; adding a 'data' listener
 * (above) hands the socket back to JavaScript, but a read the parser had stopped is not
 * restarted, and the connection would hang with unread bytes until it is reset. Start it
 * again, as `net` itself does (`tryReadStart`).
 */
function restartReading(socket: Socket): void {
  const handle = (socket as Socket & { _handle?: StreamHandle | null })._handle;
  if (handle?.readStart === undefined || handle.reading === true) return;
  handle.reading = true;
  if (handle.readStart() !== 0) socket.destroy();
}

/**
 * Prepares an answer sent before the request body was read (413, 503, a 4xx from the
 * headers): the connection closes after it, lingering so the client can finish writing
 * and read it. Node would destroy the socket right after the response (`destroySoon`);
 * this replaces that, for this one socket, with `lingerClose`.
 */
export function answerEarly(res: ServerResponse): void {
  const req = res.req;
  const socket = req.socket;
  res.setHeader('Connection', 'close');
  // Node calls destroySoon() once a `Connection: close` response has finished.
  socket.destroySoon = () => lingerClose(socket);
  // Stop feeding whatever consumed the body (an upload stream) and drop what comes.
  req.unpipe();
  req.resume();
}

/**
 * A complete HTTP/1.1 problem+json response as bytes, for places that answer outside a
 * `ServerResponse` (the parser's errors, CONNECT, refused connections).
 */
export function rawProblemResponse(
  error: BlobcacheError,
  extraHeaders: readonly [string, string][] = [],
): Buffer {
  const body = JSON.stringify(problemBody(error));
  const headers = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`,
    'Content-Type: application/problem+json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    ...extraHeaders.map(([name, value]) => `${name}: ${value}`),
  ];
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
