/**
 * One-shot GET load generator (a separate process): `requests` GETs spread round-robin over
 * `urls`, at most `concurrency` at once, each on its own connection, as many clients
 * starting together do. Prints one JSON line: statuses, bytes, each request's time to first
 * byte and to last byte, and whether every body had the expected length (and MD5 if given).
 *
 * usage: node bench/get-load.ts '<json of GetLoadOptions>'
 */
import { createHash } from 'node:crypto';
import { request, type Agent } from 'node:http';

export interface GetLoadOptions {
  urls: string[];
  requests: number;
  concurrency: number;
  expectedBytes: number;
  /** Hex MD5 every body must have (costs the load generator a core per ~900 MB/s). */
  md5?: string;
}

export interface GetLoadResult {
  requests: number;
  correct: number;
  errors: number;
  bytes: number;
  seconds: number;
  firstByteMs: { p50: number; max: number };
  lastByteMs: { p50: number; max: number };
}

/** One timed GET; on a new connection unless `agent` keeps one open. */
export function timedGet(
  url: string,
  options: Pick<GetLoadOptions, 'expectedBytes' | 'md5'>,
  agent: Agent | false = false,
): Promise<{ correct: boolean; bytes: number; firstByteMs: number; lastByteMs: number }> {
  const started = process.hrtime.bigint();
  const since = (): number => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve) => {
    const req = request(url, { agent }, (res) => {
      let firstByteMs = Number.NaN;
      let bytes = 0;
      const hash = options.md5 === undefined ? undefined : createHash('md5');
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) firstByteMs = since();
        bytes += chunk.length;
        hash?.update(chunk);
      });
      res.on('end', () =>
        resolve({
          correct:
            res.statusCode === 200 &&
            bytes === options.expectedBytes &&
            (hash === undefined || hash.digest('hex') === options.md5),
          bytes,
          firstByteMs,
          lastByteMs: since(),
        }),
      );
      res.on('error', () => resolve({ correct: false, bytes, firstByteMs, lastByteMs: since() }));
    });
    req.on('error', () =>
      resolve({ correct: false, bytes: 0, firstByteMs: Number.NaN, lastByteMs: since() }),
    );
    req.end();
  });
}

const summary = (values: number[]): { p50: number; max: number } => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    p50: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
};

export async function getLoad(options: GetLoadOptions): Promise<GetLoadResult> {
  const results: Awaited<ReturnType<typeof timedGet>>[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency, options.requests) }, async () => {
      while (next < options.requests) {
        const index = next++;
        results.push(await timedGet(options.urls[index % options.urls.length]!, options));
      }
    }),
  );
  const correct = results.filter((result) => result.correct).length;
  return {
    requests: options.requests,
    correct,
    errors: options.requests - correct,
    bytes: results.reduce((sum, result) => sum + result.bytes, 0),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    firstByteMs: summary(results.map((result) => result.firstByteMs)),
    lastByteMs: summary(results.map((result) => result.lastByteMs)),
  };
}

if (import.meta.main) {
  const options = JSON.parse(process.argv[2] ?? '') as GetLoadOptions;
  console.log(JSON.stringify(await getLoad(options)));
}
