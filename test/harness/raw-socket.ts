import { connect, type Socket } from 'node:net';

export interface RawExchangeOptions {
  /** What to do once the bytes are written: nothing, half-close, or reset. @default 'none' */
  after?: 'none' | 'end' | 'reset';
  /** Give up waiting for the server to close after this long. @default 10000 */
  timeoutMs?: number;
}

export interface RawExchange {
  /** Everything the server sent before closing (or before the timeout). */
  text: string;
  /** How the connection ended on our side: closed by the server, reset, or timed out. */
  ending: 'closed' | 'reset' | 'timeout';
}

function addressOf(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

/** Opens a TCP connection to the server of `url`. */
export function openSocket(url: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(addressOf(url), () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * Writes raw bytes to the server (whatever HTTP/1.1 parsers would refuse to produce) and
 * collects what comes back until the server closes the connection.
 */
export async function rawExchange(
  url: string,
  bytes: string | Buffer,
  options: RawExchangeOptions = {},
): Promise<RawExchange> {
  const socket = await openSocket(url);
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const settle = (ending: RawExchange['ending']): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, ending });
    };
    const timer = setTimeout(() => settle('timeout'), options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => settle('reset'));
    socket.on('close', () => settle('closed'));
    socket.write(bytes, () => {
      if (options.after === 'end') socket.end();
      if (options.after === 'reset') socket.resetAndDestroy();
    });
  });
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits raw HTTP/1.1 responses with Content-Length bodies (what the server sends here). */
export function parseResponses(text: string): ParsedResponse[] {
  const responses: ParsedResponse[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const headerEnd = rest.indexOf('\r\n\r\n');
    if (headerEnd < 0) break;
    const [statusLine = '', ...lines] = rest.slice(0, headerEnd).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const bodyStart = headerEnd + 4;
    responses.push({
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: rest.slice(bodyStart, bodyStart + length),
    });
    rest = rest.slice(bodyStart + length);
  }
  return responses;
}
