/**
 * Load process of the cold-start benchmark: GETs each URL given (as JSON on argv[2]: a list
 * of URLs, all started at once) over its own connection, and prints per request the time
 * to the first body byte and to the last, the bytes and their MD5, as one JSON line.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface ReaderTiming {
  status: number;
  bytes: number;
  md5: string;
  firstByteMs: number;
  lastByteMs: number;
  error?: string;
}

function read(url: string, started: number): Promise<ReaderTiming> {
  return new Promise((resolve) => {
    const hash = createHash('md5');
    let bytes = 0;
    let firstByteMs = -1;
    const req = request(url, { agent: false }, (res) => {
      res.on('data', (chunk: Buffer) => {
        if (firstByteMs < 0) firstByteMs = performance.now() - started;
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          bytes,
          md5: hash.digest('hex'),
          firstByteMs,
          lastByteMs: performance.now() - started,
        }),
      );
      res.on('error', (error) =>
        resolve({
          status: res.statusCode ?? 0,
          bytes,
          md5: '',
          firstByteMs,
          lastByteMs: -1,
          error: error.message,
        }),
      );
    });
    req.on('error', (error) =>
      resolve({ status: 0, bytes, md5: '', firstByteMs, lastByteMs: -1, error: error.message }),
    );
    req.end();
  });
}

const urls = JSON.parse(process.argv[2] ?? '[]') as string[];
const started = performance.now();
const timings = await Promise.all(urls.map((url) => read(url, started)));
process.stdout.write(`${JSON.stringify(timings)}\n`);
