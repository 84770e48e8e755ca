/**
 * Second reference process of the cold-start benchmark: stores blobs of the given sizes in
 * the Redis Cluster the way a fill stages them (the fast tier's chunk writer, same chunk
 * size and writes in flight), hashing each byte with MD5 once, `parallelism` blobs at once,
 * reading nothing from S3. Prints bytes and seconds as one JSON line: what storing alone
 * costs on this machine, the ceiling of any backfill here.
 */
import { createHash, randomFillSync, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connectRedis } from '../dataplane/src/clients.ts';
import { configFromEnvironment } from '../dataplane/src/config-file.ts';
import { createLogger } from '../dataplane/src/logging.ts';
import { RedisFastTier } from '../dataplane/src/redis/fast-tier.ts';

const parallelism = Number(process.argv[2] ?? 4);
const sizes = JSON.parse(process.argv[3] ?? '[]') as number[];
const config = configFromEnvironment(process.env);
const redis = await connectRedis(
  { ...config, redisNodes: config.redisNodes! },
  createLogger({ level: 'warn' }),
);
const fast = new RedisFastTier({
  redis,
  chunkBytes: config.chunkBytes,
  replicaWaitMs: config.replicaWaitMs,
});
// One random source, sliced: generating bytes is not what is measured.
const source = randomFillSync(Buffer.allocUnsafe(Math.max(...sizes, 1)));
const PIECE = 64 * 1024;
const started = performance.now();
let bytes = 0;
let next = 0;
const worker = async (): Promise<void> => {
  while (next < sizes.length) {
    const size = sizes[next++]!;
    const key = createHash('md5').update(randomUUID()).digest('hex');
    const staging = fast.stagingWriter(key, size, { onStored: () => undefined });
    const md5 = createHash('md5');
    const pieces = function* () {
      for (let offset = 0; offset < size; offset += PIECE)
        yield source.subarray(offset, Math.min(size, offset + PIECE));
    };
    await pipeline(
      Readable.from(pieces(), { objectMode: false }),
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          callback(null, chunk);
        },
      }),
      staging.writable,
    );
    md5.digest();
    bytes += size;
  }
};
await Promise.all(Array.from({ length: parallelism }, worker));
const seconds = (performance.now() - started) / 1000;
redis.disconnect();
process.stdout.write(`${JSON.stringify({ bytes, seconds })}\n`);
