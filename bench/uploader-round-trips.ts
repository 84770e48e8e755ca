/**
 * Redis round trips the write-behind uploader spends per blob it persists to S3 (a
 * separate command, not part of `npm run bench`): starts a Redis Cluster and an S3 server
 * as the tests do, publishes `count` 4 KiB blobs as acknowledged uploads leave them
 * (pending, with a journal entry), persists them one at a time, and prints the requests
 * the Redis masters read meanwhile (`total_reads_processed`: one per command or pipeline
 * the client sent) divided by `count`, and the commands one persist sent.
 *
 * usage: node bench/uploader-round-trips.ts [count]
 */
import { Uploader } from '../dataplane/src/blob/uploader.ts';
import { Metrics } from '../dataplane/src/metrics.ts';
import { RedisFastTier } from '../dataplane/src/redis/fast-tier.ts';
import { Journal, type JournalEntry } from '../dataplane/src/redis/journal.ts';
import { UploadLeases } from '../dataplane/src/redis/upload-leases.ts';
import { publishAcknowledged } from '../test/harness/acknowledged-upload.ts';
import { blobOf, md5 } from '../test/harness/blobs.ts';
import { silentLogger } from '../test/harness/logger.ts';
import { startProductionStack } from '../test/harness/production.ts';

const count = Number(process.argv[2] ?? 50);
const stack = await startProductionStack();
try {
  const { cluster } = stack;
  const fast = new RedisFastTier({ redis: cluster, chunkBytes: 1 << 20, replicaWaitMs: 2_000 });
  const journal = new Journal({ redis: cluster, partitions: 8, replicaWaitMs: 2_000 });
  await journal.ensureGroups();
  const uploader = new Uploader({
    journal,
    fast,
    leases: new UploadLeases(cluster),
    store: stack.store,
    metrics: new Metrics(),
    logger: silentLogger,
    consumer: 'bench',
    concurrency: 1,
    claimIdleMs: 30_000,
    retryMaxMs: 1_000,
    abandonAfterMs: 60_000,
    cachedTtlMs: 3_600_000,
  });

  /** What an acknowledged write-behind upload leaves: a pending blob and its entry. */
  const acknowledged = async (seed: number): Promise<JournalEntry> => {
    const blob = blobOf(4096, seed);
    return publishAcknowledged({ fast, journal }, blob, await fast.generation(md5(blob)));
  };

  const readsByMasters = async (): Promise<number> => {
    let total = 0;
    for (const node of cluster.nodes('master')) {
      total += Number(/total_reads_processed:(\d+)/.exec(await node.info('stats'))?.[1] ?? 0);
    }
    return total;
  };

  const entries: JournalEntry[] = [];
  for (let seed = 0; seed < count; seed++) entries.push(await acknowledged(10_000 + seed));
  // The first persist loads the scripts on the masters: not counted.
  await uploader.persist(await acknowledged(9_999));
  const before = await readsByMasters();
  for (const entry of entries) await uploader.persist(entry);
  const perBlob = ((await readsByMasters()) - before) / count;

  const sent: string[] = [];
  const send = cluster.sendCommand.bind(cluster);
  cluster.sendCommand = (command, ...rest) => {
    sent.push(command.name);
    return send(command, ...rest);
  };
  const traced = await acknowledged(9_998);
  sent.length = 0;
  await uploader.persist(traced);
  console.log(
    JSON.stringify({ blobs: count, redisRequestsPerBlob: perBlob, commandsOfOnePersist: sent }),
  );
} finally {
  await stack.stop();
}
