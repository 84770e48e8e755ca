/**
 * Reference process of the cold-start benchmark: reads every blob the durable tier lists
 * straight from S3 with the AWS SDK (the data plane's own S3 client settings, from the same
 * environment the backfill gets), `parallelism` at once, hashing nothing, and prints the
 * bytes and seconds as one JSON line. What the backfill's throughput is compared with.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { performance } from 'node:perf_hooks';
import { openDurableStore } from '../dataplane/src/clients.ts';
import { configFromEnvironment } from '../dataplane/src/config-file.ts';
import { createLogger } from '../dataplane/src/logging.ts';
import { Metrics } from '../dataplane/src/metrics.ts';

const parallelism = Number(process.argv[2] ?? 4);
const config = configFromEnvironment(process.env);
const store = await openDurableStore(config, createLogger({ level: 'warn' }), new Metrics(), {
  attach: true,
});
const started = performance.now();
const keys: string[] = [];
for await (const blob of store.list()) keys.push(blob.key);
let bytes = 0;
let next = 0;
const worker = async (): Promise<void> => {
  while (next < keys.length) {
    const read = await store.get(keys[next++]!);
    if (read === null) continue;
    await pipeline(
      read.stream,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback();
        },
      }),
    );
  }
};
await Promise.all(Array.from({ length: parallelism }, worker));
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ blobs: keys.length, bytes, seconds })}\n`);
