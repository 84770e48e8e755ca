/**
 * The floor of an acknowledged small upload on the production tier (a separate process): a
 * bare node:http server that stores each PUT's body in the Redis Cluster with one `SET` and
 * answers once a replica has it (`WAIT 1`), the uploads to one shard sharing each `WAIT` as
 * the data plane's publishes do (dataplane/src/group-commit.ts). Nothing else: no MD5
 * check, lookup, journal entry, publish script, hot tier or write-behind to S3. What any
 * design that acknowledges a blob once a master and a replica hold it must do at least;
 * the production tier's 4 KiB PUT is compared with it, measured in the same run.
 *
 * With `unreplicated`, it answers after the `SET` alone: the same server without the
 * replica's confirmation, to tell what HTTP costs from what replication does.
 *
 * usage: BLOBCACHE_REDIS_NODES=host:port,... node bench/replicated-put-floor.ts [unreplicated]
 * Prints {"url": ...} once listening.
 */
import calculateSlot from 'cluster-key-slot';
import { connectRedis } from '../dataplane/src/clients.ts';
import { configFromEnvironment } from '../dataplane/src/config-file.ts';
import { GroupCommit } from '../dataplane/src/group-commit.ts';
import { createLogger } from '../dataplane/src/logging.ts';
import { serveFloorPuts } from './floor-server.ts';

const REPLICA_WAIT_MS = 1000;
const replicated = process.argv[2] !== 'unreplicated';
const config = configFromEnvironment(process.env);
if (config.redisNodes === undefined) throw new Error('Set BLOBCACHE_REDIS_NODES');
const redis = await connectRedis(
  { ...config, redisNodes: config.redisNodes },
  createLogger({ level: 'warn' }),
);

interface Write {
  key: string;
  body: Buffer;
}

/** One pipeline per batch of a shard: every `SET`, then one `WAIT` confirming them all. */
const batches = new GroupCommit<Write, boolean>({
  run: async (_shard, writes) => {
    const pipeline = redis.pipeline();
    for (const write of writes) pipeline.set(write.key, write.body);
    if (replicated) pipeline.wait(1, REPLICA_WAIT_MS);
    const results = (await pipeline.exec()) ?? [];
    const [waitError, replicas] = results[writes.length] ?? [new Error('No reply to WAIT')];
    const confirmed = !replicated || (waitError === null && (replicas as number) >= 1);
    return writes.map((_, index) => confirmed && results[index]?.[0] === null);
  },
});

serveFloorPuts(async (key, body) => {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  const redisKey = `floor:{${key}}`;
  const shard = redis.slots[calculateSlot(redisKey)]?.join(';') ?? '';
  const stored = await batches.submit(shard, { key: redisKey, body: Buffer.concat(chunks) });
  if (!stored) throw new Error('Not confirmed by a replica');
});
