import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import { ServiceUnavailableError } from '../blob/errors.ts';
import { execPipeline } from './cluster-pipeline.ts';
import { journalPartitionOf, journalStream } from './keys.ts';

export const UPLOADER_GROUP = 'uploaders';

export interface JournalEntry {
  partition: number;
  id: string;
  key: string;
  /** The blob's generation when the entry was appended; a DELETE since then changes it. */
  generation: string;
  /** When the entry was appended (from its stream id), ms since the epoch. */
  appendedAt: number;
}

export interface JournalBacklog {
  /** Entries not yet acknowledged (blobs not yet known to be in the durable tier). */
  length: number;
  /** Age of the oldest such entry, 0 when there is none. */
  oldestAgeMs: number;
}

/**
 * The write-behind journal: Redis Streams, one per partition, each on its own hash tag so
 * partitions spread over the shards, read through one consumer group by every process.
 * An entry is appended (and replicated) before its blob is published, and removed once
 * the durable tier has the blob; so a blob that is acknowledged always has an entry.
 */
export class Journal {
  private readonly redis: Cluster;
  readonly partitions: number;
  private readonly replicaWaitMs: number;

  constructor(options: { redis: Cluster; partitions: number; replicaWaitMs: number }) {
    this.redis = options.redis;
    this.partitions = options.partitions;
    this.replicaWaitMs = options.replicaWaitMs;
  }

  /** Creates the consumer group on every partition (idempotent). */
  async ensureGroups(): Promise<void> {
    for (let partition = 0; partition < this.partitions; partition++) {
      try {
        await this.redis.xgroup(
          'CREATE',
          journalStream(partition),
          UPLOADER_GROUP,
          '0',
          'MKSTREAM',
        );
      } catch (error) {
        if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
      }
    }
  }

  /** Appends an entry for `key` and waits for a replica to have it (when there is one). */
  async append(key: string, generation: string): Promise<JournalEntry> {
    const partition = journalPartitionOf(key, this.partitions);
    const stream = journalStream(partition);
    const replicated = (this.redis.slots[calculateSlot(stream)]?.length ?? 0) > 1;
    const [id, acknowledged] = (await execPipeline(() => {
      const pipeline = this.redis.pipeline().xadd(stream, '*', 'key', key, 'gen', generation);
      return replicated ? pipeline.wait(1, this.replicaWaitMs) : pipeline;
    })) as [string, number | undefined];
    if (replicated && (acknowledged ?? 0) < 1) {
      // The upload is refused, so its entry must not linger as backlog.
      await this.redis.xdel(stream, id).catch(() => undefined);
      throw new ServiceUnavailableError(`No replica confirmed the journal entry for ${key}; retry`);
    }
    return { partition, id, key, generation, appendedAt: idTime(id) };
  }

  /** New entries for `consumer` on one partition (never delivered to anyone before). */
  async readNew(partition: number, consumer: string, count: number): Promise<JournalEntry[]> {
    const reply = (await this.redis.xreadgroup(
      'GROUP',
      UPLOADER_GROUP,
      consumer,
      'COUNT',
      count,
      'STREAMS',
      journalStream(partition),
      '>',
    )) as [string, [string, string[]][]][] | null;
    return toEntries(partition, reply?.[0]?.[1] ?? []);
  }

  /** Takes over entries that sat unacknowledged for `minIdleMs` (their consumer died or failed). */
  async claimStale(
    partition: number,
    consumer: string,
    minIdleMs: number,
    count: number,
  ): Promise<JournalEntry[]> {
    const reply = (await this.redis.xautoclaim(
      journalStream(partition),
      UPLOADER_GROUP,
      consumer,
      minIdleMs,
      '0-0',
      'COUNT',
      count,
    )) as [string, [string, string[] | null][]];
    return toEntries(partition, reply[1]);
  }

  /** Resets an entry's idle time so other consumers leave it to us while we retry it. */
  async keep(entry: JournalEntry, consumer: string): Promise<void> {
    await this.redis.xclaim(
      journalStream(entry.partition),
      UPLOADER_GROUP,
      consumer,
      0,
      entry.id,
      'JUSTID',
    );
  }

  /** Done with an entry: acknowledged and removed, so stream length is the backlog. */
  async complete(entry: JournalEntry): Promise<void> {
    const stream = journalStream(entry.partition);
    await this.redis
      .pipeline()
      .xack(stream, UPLOADER_GROUP, entry.id)
      .xdel(stream, entry.id)
      .exec();
  }

  async backlog(now = Date.now()): Promise<JournalBacklog> {
    let length = 0;
    let oldest = now;
    for (let partition = 0; partition < this.partitions; partition++) {
      const stream = journalStream(partition);
      length += await this.redis.xlen(stream);
      const first = (await this.redis.xrange(stream, '-', '+', 'COUNT', 1))[0];
      if (first !== undefined) oldest = Math.min(oldest, idTime(first[0]));
    }
    return { length, oldestAgeMs: now - oldest };
  }
}

function idTime(id: string): number {
  return Number(id.split('-')[0]);
}

function toEntries(partition: number, raw: [string, string[] | null][]): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (const [id, fields] of raw) {
    // XAUTOCLAIM reports entries deleted meanwhile with null fields.
    if (fields === null) continue;
    const field = (name: string): string | undefined => {
      const index = fields.indexOf(name);
      return index >= 0 && index % 2 === 0 ? fields[index + 1] : undefined;
    };
    const key = field('key');
    if (key !== undefined) {
      entries.push({ partition, id, key, generation: field('gen') ?? '', appendedAt: idTime(id) });
    }
  }
  return entries;
}
