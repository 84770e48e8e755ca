import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { expect } from 'chai';
import { openSocket, rawExchange } from './raw-socket.ts';

/** The four ways of failing an upload that once took the whole process down (issue 9). */
export const KILLER_UPLOADS = {
  'a malformed chunked body': (key: string) =>
    `PUT /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdefghijklmnopqrstuvwxy\r\n0\r\n\r\n`,
  'Transfer-Encoding: identity': (key: string) =>
    `PUT /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nabcdefghij`,
};

/** Sends a PUT's headers only, then resets the connection (RST). */
export async function resetAfterHeaders(url: string, key: string, length: number): Promise<void> {
  const socket = await openSocket(url);
  await new Promise<void>((resolve) => {
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.write(
      `PUT /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n\r\n`,
      () => socket.resetAndDestroy(),
    );
  });
}

/**
 * Declares `declared` bytes, sends `body` (fewer), then closes: what a client does when it
 * crashes mid-upload. Resolves with the status if the server answered first (an upload of
 * a key already stored may be answered before its body is read), else 0.
 */
export function shortUpload(url: string, body: Buffer, declared: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'PUT', headers: { 'Content-Length': String(declared) } });
    let status = 0;
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.resume();
    });
    req.on('error', () => resolve(status));
    req.on('close', () => resolve(status));
    req.write(body, () => setTimeout(() => req.destroy(), 100));
  });
}

/** Fails if the process no longer answers its liveness probe. */
export async function expectAlive(url: string): Promise<void> {
  const response = await fetch(`${url}/healthz`);
  expect(response.status).to.equal(200);
  expect(await response.json()).to.deep.equal({ status: 'ok' });
}

/** Runs every killer upload, the reset and the short body against `url`. */
export async function runKillerUploads(url: string, storedKey: string): Promise<void> {
  const fresh = 'a'.repeat(32);
  for (const build of Object.values(KILLER_UPLOADS)) {
    for (const key of [fresh, storedKey]) {
      const answer = await rawExchange(url, build(key), { timeoutMs: 10_000 });
      expect(answer.ending).to.not.equal('timeout');
    }
  }
  for (const key of [fresh, storedKey]) await resetAfterHeaders(url, key, 100_000);
  await shortUpload(`${url}/v1/blobs/${storedKey}`, Buffer.alloc(1000, 1), 100_000);
  await shortUpload(`${url}/v1/blobs/${fresh}`, Buffer.alloc(1000, 1), 100_000);
}

export interface PythonAnswer {
  status: number;
  contentType: string;
  body: string;
}

/**
 * PUTs `size` bytes with Python's http.client, which writes the whole body before it reads
 * anything: the client that saw early answers as resets.
 */
export function pythonPut(
  url: string,
  size: number,
  headers: Record<string, string> = {},
): Promise<PythonAnswer> {
  const script = `
import http.client, json, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
connection.request('PUT', url.path, body=b'x' * int(sys.argv[2]), headers=json.loads(sys.argv[3]))
response = connection.getresponse()
print(json.dumps({'status': response.status, 'contentType': response.getheader('Content-Type', ''), 'body': response.read().decode()}))
`;
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', script, url, String(size), JSON.stringify(headers)]);
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(out) as PythonAnswer);
      else reject(new Error(`python3 exited with ${code}: ${err.trim().split('\n').pop()}`));
    });
  });
}
