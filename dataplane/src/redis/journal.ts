import calculateSlot from 'cluster-key-slot';
import type { ChainableCommander, Cluster } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { ServiceUnavailableError } from '../blob/errors.ts';
import { GroupCommit } from '../group-commit.ts';
import { execPipeline, REDIRECTED } from './cluster-pipeline.ts';
import { journalPartitionOf, journalStream, uploadMarker } from './keys.ts';
import { ReplicaPresence, replicasConfirmed } from './replica-presence.ts';

export const UPLOADER_GROUP = 'uploaders';

export interface JournalEntry {
  partition: number;
  id: string;
  key: string;
  /** The blob's generation when the entry was appended; a DELETE since then changes it. */
  generation: string;
  /** When the entry was appended (from its stream id), ms since the epoch. */
  appendedAt: number;
  /**
   * Names the entry's upload marker and, in the manifest, the entry that persists the blob
   * (only that entry may mark it cached). Empty for entries written before markers existed.
   */
  token: string;
}

/**
 * What the upload that appended an entry reported: still `streaming` (a marker it keeps
 * alive while it runs), `published` (the blob was made visible), or `gone` (no marker: the
 * upload ended without publishing, or its process died).
 */
export type UploadState = 'streaming' | 'published' | 'gone';

/** One entry to append: its stream, fields and upload marker. */
interface Append {
  stream: string;
  key: string;
  generation: string;
  token: string;
  marker: string;
  published: boolean;
}

/** An append's stream id (or why it failed), and the replicas that confirmed it (null: none). */
interface Appended {
  id: string | Error;
  replicas: number | null | Error;
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
  private readonly replicaPresence: ReplicaPresence;
  /** Lifetime of a streaming marker; the upload renews it at a third of this. */
  readonly streamingMarkerMs: number;
  /**
   * Appends to one shard share a `WAIT` (group commit, as the publishes of 0081 do): one
   * `WAIT` confirms every write before it on the connection, and blocks the connection
   * while it waits, so one per append held up every other command to that shard.
   */
  private readonly appends = new GroupCommit<Append, Appended>({
    run: (_nodes, batch) => this.appendBatch(batch),
  });

  constructor(options: {
    redis: Cluster;
    partitions: number;
    replicaWaitMs: number;
    /** @default 15000 */
    streamingMarkerMs?: number;
  }) {
    this.redis = options.redis;
    this.replicaPresence = new ReplicaPresence(options.redis);
    this.partitions = options.partitions;
    this.replicaWaitMs = options.replicaWaitMs;
    this.streamingMarkerMs = options.streamingMarkerMs ?? 15_000;
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

  /**
   * Appends an entry for `key` and waits for a replica to have it (when there is one). Its
   * upload marker starts as `streaming` (renew it with `keepStreaming` while the upload
   * runs), or as `published` for a blob that is visible already.
   */
  async append(
    key: string,
    generation: string,
    options: { published?: boolean } = {},
  ): Promise<JournalEntry> {
    const partition = journalPartitionOf(key, this.partitions);
    const stream = journalStream(partition);
    const token = randomUUID();
    const marker = uploadMarker(partition, token);
    const append = {
      stream,
      key,
      generation,
      token,
      marker,
      published: options.published === true,
    };
    const nodes = this.redis.slots[calculateSlot(stream)];
    let appended =
      nodes === undefined ? undefined : await this.appends.submit(nodes.join(';'), append);
    // Redirected before it ran (a failover or a slot move): alone, following redirections.
    if (
      appended === undefined ||
      (appended.id instanceof Error && REDIRECTED.test(appended.id.message))
    )
      appended = await this.appendAlone(append);
    const { id, replicas } = appended;
    if (id instanceof Error) throw id;
    if (replicas instanceof Error) throw replicas;
    if (replicas !== null && replicas < 1) {
      // The upload is refused, so its entry must not linger as backlog.
      await this.redis
        .pipeline()
        .xdel(stream, id)
        .del(marker)
        .exec()
        .catch(() => undefined);
      throw new ServiceUnavailableError(`No replica confirmed the journal entry for ${key}; retry`);
    }
    return { partition, id, key, generation, appendedAt: idTime(id), token };
  }

  private queueAppend(pipeline: ChainableCommander, append: Append): void {
    const { stream, key, generation, token, marker } = append;
    pipeline.xadd(stream, '*', 'key', key, 'gen', generation, 'tok', token);
    if (append.published) pipeline.set(marker, 'published');
    else pipeline.set(marker, 'streaming', 'PX', this.streamingMarkerMs);
  }

  /**
   * One pipeline for a batch of appends to one shard, then one `WAIT` when the shard has a
   * replica. The batch's group key names the nodes serving every stream in it.
   */
  private async appendBatch(batch: readonly Append[]): Promise<Appended[]> {
    const first = batch[0];
    const nodes = first === undefined ? undefined : this.redis.slots[calculateSlot(first.stream)];
    if (nodes === undefined) throw new Error('The shard of the batch is not known any more');
    const waits = await this.replicaPresence.shardHasReplica(nodes);
    const pipeline = this.redis.pipeline();
    for (const append of batch) this.queueAppend(pipeline, append);
    if (waits) pipeline.wait(1, this.replicaWaitMs);
    const results = (await pipeline.exec()) ?? [];
    const replicas = replicasConfirmed(results[batch.length * 2], waits);
    return batch.map((_, index) => {
      const [xaddError, id] = results[index * 2] ?? [new Error('No reply to XADD')];
      const [markerError] = results[index * 2 + 1] ?? [new Error('No reply to the marker')];
      return { id: xaddError ?? markerError ?? (id as string), replicas };
    });
  }

  /** One append in its own pipeline, sent again while the cluster redirects it. */
  private async appendAlone(append: Append): Promise<Appended> {
    const waits = await this.replicaPresence.slotHasReplica(calculateSlot(append.stream));
    const [id, , replicas] = (await execPipeline(() => {
      const pipeline = this.redis.pipeline();
      this.queueAppend(pipeline, append);
      return waits ? pipeline.wait(1, this.replicaWaitMs) : pipeline;
    })) as [string, unknown, number | undefined];
    return { id, replicas: waits ? (replicas ?? 0) : null };
  }

  /** Keeps an entry's `streaming` marker alive; false once it is gone (or published). */
  async keepStreaming(entry: JournalEntry): Promise<boolean> {
    const marker = uploadMarker(entry.partition, entry.token);
    return (await this.redis.pexpire(marker, this.streamingMarkerMs, 'GT')) === 1;
  }

  /** The entry's blob is visible now: a manifest missing later means the blob was lost. */
  async markPublished(entry: JournalEntry): Promise<void> {
    await this.redis.set(uploadMarker(entry.partition, entry.token), 'published');
  }

  async uploadState(entry: JournalEntry): Promise<UploadState> {
    const state = await this.redis.get(uploadMarker(entry.partition, entry.token));
    return state === 'published' || state === 'streaming' ? state : 'gone';
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

  /**
   * Resets an entry's idle time so other consumers leave it to us while we retry it. False
   * when the entry is no longer pending (completed meanwhile, e.g. by its own upload).
   */
  async keep(entry: JournalEntry, consumer: string): Promise<boolean> {
    const claimed = (await this.redis.xclaim(
      journalStream(entry.partition),
      UPLOADER_GROUP,
      consumer,
      0,
      entry.id,
      'JUSTID',
    )) as string[];
    return claimed.length > 0;
  }

  /** Done with an entry: acknowledged and removed, so stream length is the backlog. */
  async complete(entry: JournalEntry): Promise<void> {
    const stream = journalStream(entry.partition);
    await execPipeline(() =>
      this.redis
        .pipeline()
        .xack(stream, UPLOADER_GROUP, entry.id)
        .xdel(stream, entry.id)
        .del(uploadMarker(entry.partition, entry.token)),
    );
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
      entries.push({
        partition,
        id,
        key,
        generation: field('gen') ?? '',
        appendedAt: idTime(id),
        token: field('tok') ?? '',
      });
    }
  }
  return entries;
}
