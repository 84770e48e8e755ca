import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'winston';
import type { BlobcacheError } from '../blob/errors.ts';
import {
  BadRequestError,
  BlobTooLargeError,
  ExpectationFailedError,
  HeadersTooLargeError,
  MethodNotAllowedError,
  RequestTimeoutError,
  ServiceUnavailableError,
} from '../blob/errors.ts';
import type { Metrics } from '../metrics.ts';
import { answerEarly, isLingering, lingerClose, rawProblemResponse } from './early-answer.ts';
import { problemBody } from './problem-body.ts';

export interface ConnectionGuardOptions {
  logger: Logger;
  metrics: Metrics;
  /** Connections served at once; the next ones are answered 503 and closed. */
  maxConnections: number;
  /** A connection on which no byte moved either way for this long is cut. */
  idleTimeoutMs: number;
}

/** What Node's HTTP parser reported, as the problem to answer with. */
export function parserProblem(error: NodeJS.ErrnoException): BlobcacheError {
  const reason = error.message.replace(/^Parse Error:\s*/, '');
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new HeadersTooLargeError('The request headers are too large');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new BlobTooLargeError('The chunk extensions of the request are too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_TIMEOUT':
      return new RequestTimeoutError('The request was not received in time');
    default:
      return new BadRequestError(`The request is not valid HTTP/1.1: ${reason}`);
  }
}

/** The response of `socket` already under way, if any (Node keeps it on the socket). */
function responseInProgress(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

interface StreamHandle {
  writeQueueSize?: number;
}

/**
 * Bytes that really moved on a connection: read from it, or taken by the kernel (written
 * and no longer queued). A reader that stopped reading moves neither.
 */
function progressOf(socket: Socket): number {
  const queued = (socket as Socket & { _handle?: StreamHandle | null })._handle?.writeQueueSize;
  return socket.bytesRead + socket.bytesWritten - socket.writableLength - (queued ?? 0);
}

/**
 * The response of `socket` when the server, not the client, holds the connection up: no
 * status sent yet, and the request either read whole or waiting for the server to read
 * more of its body (bytes buffered, or the request paused by backpressure).
 */
function answerOwed(socket: Socket): ServerResponse | undefined {
  const response = responseInProgress(socket);
  if (response === undefined || response.headersSent || response.writableEnded) return undefined;
  const req = response.req;
  return req.complete || req.readableLength > 0 || req.isPaused() ? response : undefined;
}

/**
 * Cuts connections on which nothing moved for `idleTimeoutMs`, unless the client is
 * waiting for an answer (`answerOwed`): then it gets a 503 it may retry, never a
 * dropped connection. Node's own socket timeout
 * (kept as a backstop) lets a write in progress that made any progress in one period start
 * another period, so a stalled reader was cut only after about twice the timeout.
 */
function cutIdleConnections(server: Server, options: ConnectionGuardOptions): void {
  const { idleTimeoutMs, metrics, logger } = options;
  const watched = new Map<Socket, { progress: number; since: number }>();
  /** Answers what is owed, else cuts; true when the connection was cut. */
  const onIdle = (socket: Socket, idleMs: number): boolean => {
    const owed = answerOwed(socket);
    if (owed !== undefined) {
      // The client waits for us (a tier stalled): an answer it may retry, not a cut.
      metrics.stalledAnswers.inc();
      logger.warn('Answered 503: no answer was ready in time', {
        idleMs,
        method: owed.req.method,
        path: owed.req.url,
      });
      sendProblem(
        owed,
        new ServiceUnavailableError(
          `No answer within ${idleTimeoutMs} ms: a storage tier is stalled; retry shortly`,
        ),
        [['Retry-After', '1']],
      );
      return false;
    }
    metrics.clientErrors.inc({ reason: 'idle' });
    logger.info('Cut a connection idle too long', { idleMs });
    socket.destroy();
    return true;
  };
  server.on('connection', (socket: Socket) => {
    watched.set(socket, { progress: progressOf(socket), since: Date.now() });
    socket.once('close', () => watched.delete(socket));
  });
  // Node's socket timeout (the backstop): with a listener here Node leaves the socket to it.
  server.on('timeout', (socket: Socket) => {
    if (onIdle(socket, idleTimeoutMs)) watched.delete(socket);
  });
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [socket, seen] of watched) {
        const progress = progressOf(socket);
        if (progress !== seen.progress) {
          seen.progress = progress;
          seen.since = now;
        } else if (now - seen.since >= idleTimeoutMs) {
          const idleMs = now - seen.since;
          seen.since = now;
          if (onIdle(socket, idleMs)) watched.delete(socket);
        }
      }
    },
    Math.max(50, Math.min(1000, idleTimeoutMs / 4)),
  );
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
}

/** Writes a problem outside any `ServerResponse`, then closes (lingering). */
function answerRaw(
  socket: Socket,
  error: BlobcacheError,
  extraHeaders: readonly [string, string][] = [],
): void {
  if (socket.writable) socket.write(rawProblemResponse(error, extraHeaders));
  lingerClose(socket);
}

/**
 * Hardens a server against hostile and broken clients (see docs/decisions/0016):
 * - the parser's errors (bad request line, Content-Length, chunks, CL+TE, oversized
 *   headers) are answered with problem+json through the `clientError` hook;
 * - `CONNECT` and unsupported `Expect` get a problem+json answer, not silence;
 * - an HTTP/1.1 request without `Host` gets a problem+json 400;
 * - connections beyond `maxConnections` are answered 503 and closed;
 * - connections on which nothing moves for `idleTimeoutMs` are cut (readers that stopped
 *   reading, clients that stopped sending);
 * - a client that half-closes after sending a whole request still gets its answer;
 * - pipelined requests run one after another, so each sees the effect of the one before.
 * Returns the request listener to serve, wrapped for the last two.
 */
export function guardConnections(
  server: Server,
  handler: RequestListener,
  options: ConnectionGuardOptions,
): RequestListener {
  const { logger, metrics } = options;
  let open = 0;
  const overCap = new WeakSet<Socket>();
  const answered = new WeakSet<Socket>();

  // Keep our side open when the client half-closes: Node would otherwise end the
  // connection at once, dropping the answer to a request it has read completely.
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  cutIdleConnections(server, options);

  server.on('connection', (socket: Socket) => {
    open += 1;
    metrics.openConnections.set(open);
    if (open > options.maxConnections) overCap.add(socket);
    socket.once('close', () => {
      open -= 1;
      metrics.openConnections.set(open);
    });
  });

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (answered.has(socket) || isLingering(socket)) return;
    answered.add(socket);
    if (error.code === 'ECONNRESET' || !socket.writable) {
      metrics.clientErrors.inc({ reason: 'reset' });
      socket.destroy();
      return;
    }
    metrics.clientErrors.inc({ reason: 'unparseable' });
    logger.info('Rejected a request Node could not parse', {
      code: error.code,
      error: error.message,
    });
    const inProgress = responseInProgress(socket);
    if (inProgress?.headersSent === true) {
      // Part of an answer is out already: only cutting the connection is honest now.
      socket.destroy();
      return;
    }
    answerRaw(socket, parserProblem(error));
  });

  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    metrics.clientErrors.inc({ reason: 'connect' });
    answerRaw(socket, new MethodNotAllowedError('CONNECT is not supported: this is not a proxy'), [
      ['Allow', 'GET, HEAD, PUT, POST, DELETE'],
    ]);
    logger.info('Refused a CONNECT request', { target: req.url });
  });

  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    sendProblem(
      res,
      new ExpectationFailedError(
        `Only Expect: 100-continue is supported, got '${String(req.headers.expect).slice(0, 80)}'`,
      ),
    );
  });

  // Each socket's requests run in order: a pipelined GET after a PUT must see the blob.
  // The socket's last response says whether it is done: no promise or listener per request
  // unless one really waits (a kept-alive client asks again only after its answer).
  const previous = new WeakMap<Socket, ServerResponse>();
  return (req, res) => {
    const socket = req.socket;
    if (isLingering(socket)) {
      // The connection is closing after an early answer; what follows is not served.
      return;
    }
    const before = previous.get(socket);
    previous.set(socket, res);
    const serve = (): void => {
      if (overCap.has(socket)) {
        metrics.connectionsRefused.inc();
        sendProblem(
          res,
          new ServiceUnavailableError(
            `The server has its maximum of ${options.maxConnections} connections open; retry shortly`,
          ),
          [['Retry-After', '1']],
        );
        return;
      }
      if (req.httpVersion === '1.1' && req.headers.host === undefined) {
        sendProblem(res, new BadRequestError('An HTTP/1.1 request needs a Host header'));
        return;
      }
      handler(req, res);
    };
    // `closed` is set as the response's 'close' is emitted (Node), as the wait used to be.
    if (before === undefined || before.closed) serve();
    else before.once('close', serve);
  };
}

/** Answers with a problem outside express (no routing, no request context). */
function sendProblem(
  res: ServerResponse,
  error: BlobcacheError,
  extraHeaders: readonly [string, string][] = [],
): void {
  const body = JSON.stringify(problemBody(error, res.req.url));
  if (!res.req.complete) answerEarly(res);
  else res.setHeader('Connection', 'close');
  res.writeHead(error.status, [
    'Content-Type',
    'application/problem+json',
    'Content-Length',
    String(Buffer.byteLength(body)),
    ...extraHeaders.flat(),
  ]);
  res.end(body);
}
