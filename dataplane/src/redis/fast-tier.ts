// Over 400 lines: one class holds every Redis operation on a blob's keys, so the key
// layout and the scripts' contracts stay in one place.
import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import { randomUUID } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ServiceUnavailableError } from '../blob/errors.ts';
import type { BlobInfo, ByteRange } from '../blob/store.ts';
import { DigestVerifier } from '../blob/verifier.ts';
import { chunkReader, chunkWriter } from './chunks.ts';
import { execPipeline } from './cluster-pipeline.ts';
import { asServiceError } from './errors.ts';
import { blobKeys } from './keys.ts';
import { ReplicaPresence } from './replica-presence.ts';
import { ReplicatedPublishes } from './replicated-publish.ts';
import {
  DELETE,
  DROP_COPY,
  MARK_CACHED,
  PUBLISH,
  RECORD_SHA256,
  RESTORE_PENDING,
} from './scripts.ts';

export type BlobState = 'pending' | 'cached';

/** What Redis knows of a published blob. */
export interface Manifest extends BlobInfo {
  chunkBytes: number;
  chunkCount: number;
  uploadId: string;
  /** `pending`: not yet in the durable tier (never evicted); `cached`: evictable copy. */
  state: BlobState;
  /** Token of the journal entry that may mark it cached ('' for fills and older manifests). */
  persistToken: string;
}

/** Chunks written and verified, not yet visible to readers. */
export interface StagedBlob extends BlobInfo {
  uploadId: string;
  chunkBytes: number;
  chunkCount: number;
}

export type PublishOutcome = 'published' | 'exists' | 'deleted' | 'chunk-lost';

export interface RedisFastTierOptions {
  redis: Cluster;
  /** @default 1 MiB */
  chunkBytes: number;
  /** TTL of staged chunks, so an upload abandoned by a crash cleans itself up. @default 1 hour */
  stagingTtlMs?: number;
  /** How long a DELETE's tombstone outlives it. @default 1 hour */
  tombstoneTtlMs?: number;
  /** Milliseconds to wait for a replica to confirm writes. */
  replicaWaitMs: number;
  /** Chunk writes / reads in flight per blob. @default 4 */
  pipelineDepth?: number;
}

/** How long a DELETE's tombstone (the bumped generation) outlives it. */
export const TOMBSTONE_TTL_MS = 3_600_000;

/** Blobs of this many chunks or more are read with `LARGE_READ_AHEAD` chunks in flight. */
const LARGE_BLOB_CHUNKS = 16;
const LARGE_READ_AHEAD = 16;

/** 20 MB/s: a deliberately low replication rate, so only a stuck replica times out. */
const REPLICATION_BYTES_PER_MS = 20_000;

const PUBLISH_CODES: Record<number, PublishOutcome> = {
  1: 'published',
  0: 'exists',
  [-1]: 'deleted',
  [-2]: 'chunk-lost',
};

/**
 * The fast tier on a Redis Cluster. A blob is a manifest hash plus fixed-size chunks, all
 * under the hash tag `{<md5>}`. Uploads write chunks under a fresh upload id with a TTL
 * and publish by writing the manifest last (a Lua script), so a reader sees a whole blob
 * or none, and concurrent uploads of one key never mix chunks.
 */
export class RedisFastTier {
  readonly redis: Cluster;
  private readonly options: Required<RedisFastTierOptions>;
  /** Publishes with their replica wait, batched per shard. */
  readonly replicatedPublishes: ReplicatedPublishes;
  private readonly replicaPresence: ReplicaPresence;

  constructor(options: RedisFastTierOptions) {
    this.redis = options.redis;
    this.options = {
      stagingTtlMs: 3_600_000,
      tombstoneTtlMs: TOMBSTONE_TTL_MS,
      pipelineDepth: 4,
      ...options,
    };
    this.replicaPresence = new ReplicaPresence(this.redis);
    this.replicatedPublishes = new ReplicatedPublishes(this.redis, this.replicaPresence);
  }

  async manifest(key: string): Promise<Manifest | null> {
    return manifestOf(key, await this.redis.hgetall(blobKeys.manifest(key)));
  }

  /**
   * The manifest and the generation token (see `generation`) in one round trip: both
   * live in the blob's slot, and uploads need both before they start.
   */
  async lookup(key: string): Promise<{ manifest: Manifest | null; generation: string }> {
    const [fields, generation] = await execPipeline(() =>
      this.redis.pipeline().hgetall(blobKeys.manifest(key)).get(blobKeys.generation(key)),
    );
    return {
      manifest: manifestOf(key, fields as Record<string, string>),
      generation: (generation as string | null) ?? '',
    };
  }

  private chunkKeys(key: string, uploadId: string, count: number): string[] {
    return Array.from({ length: count }, (_, index) => blobKeys.chunk(key, uploadId, index));
  }

  /**
   * Streams a published blob (or a range), or the chunks a fill staged so far; fails with
   * `ChunkMissingError` if a chunk is gone.
   */
  read(
    manifest: Pick<Manifest, 'key' | 'size' | 'chunkBytes' | 'uploadId'>,
    range?: ByteRange,
  ): Readable {
    return chunkReader({
      redis: this.redis,
      chunkBytes: manifest.chunkBytes,
      keyOf: (index) => blobKeys.chunk(manifest.key, manifest.uploadId, index),
      start: range?.start ?? 0,
      end: range?.end ?? manifest.size - 1,
      // Large blobs are read further ahead (still within the process's read-ahead budget):
      // a few chunks in flight leave the connection idle between round trips.
      readAhead:
        manifest.size >= LARGE_BLOB_CHUNKS * manifest.chunkBytes
          ? Math.max(LARGE_READ_AHEAD, this.options.pipelineDepth)
          : this.options.pipelineDepth,
    });
  }

  /** The generation token to pass to `publish`: a DELETE in between makes it stale. */
  async generation(key: string): Promise<string> {
    return (await this.redis.get(blobKeys.generation(key))) ?? '';
  }

  /**
   * Writes `source` as staged chunks while verifying it hashes to `key` (and size, SHA-256,
   * limit). On failure the staged chunks are removed and the error rethrown.
   */
  async stage(
    key: string,
    source: Readable,
    expect: { size?: number; sha256?: string; maxBytes?: number; signal?: AbortSignal },
  ): Promise<StagedBlob> {
    const uploadId = randomUUID().slice(0, 8);
    const verifier = new DigestVerifier({
      md5: key,
      size: expect.size,
      sha256: expect.sha256,
      maxBytes: expect.maxBytes,
    });
    const { writable, chunkCount } = chunkWriter({
      redis: this.redis,
      chunkBytes: this.options.chunkBytes,
      keyOf: (index) => blobKeys.chunk(key, uploadId, index),
      ttlMs: this.options.stagingTtlMs,
      inFlight: this.options.pipelineDepth,
      ...(expect.size === undefined ? {} : { expectedBytes: expect.size }),
    });
    const staged = (): StagedBlob => ({
      key,
      size: verifier.result?.size ?? 0,
      uploadId,
      chunkBytes: this.options.chunkBytes,
      chunkCount: chunkCount(),
      ...(expect.sha256 === undefined ? {} : { sha256: expect.sha256 }),
    });
    try {
      await pipeline(source, verifier, writable, { signal: expect.signal });
    } catch (error) {
      await this.discard(staged()).catch(() => undefined);
      throw error;
    }
    return staged();
  }

  /**
   * Where a fill stages the `size` bytes it verifies itself (once, on their way in): chunks
   * under a fresh upload id, each reported to `onStored` once Redis acknowledged it, in
   * order. The caller publishes (`staged()` describes them) or discards what it staged.
   */
  stagingWriter(
    key: string,
    size: number,
    listeners: {
      onStored: (index: number, data: Buffer) => void;
      /** The bytes of the chunk being filled, as they come (before Redis has them). */
      onReceived?: (index: number, data: Buffer, length: number) => void;
    },
  ): {
    writable: Writable;
    uploadId: string;
    staged: (size: number, sha256?: string) => StagedBlob;
  } {
    const uploadId = randomUUID().slice(0, 8);
    const { chunkBytes } = this.options;
    const { writable, chunkCount } = chunkWriter({
      redis: this.redis,
      chunkBytes,
      keyOf: (index) => blobKeys.chunk(key, uploadId, index),
      ttlMs: this.options.stagingTtlMs,
      inFlight: this.options.pipelineDepth,
      expectedBytes: size,
      ...listeners,
    });
    return {
      writable,
      uploadId,
      staged: (size, sha256) => ({
        key,
        size,
        uploadId,
        chunkBytes,
        chunkCount: chunkCount(),
        ...(sha256 === undefined ? {} : { sha256 }),
      }),
    };
  }

  /** Size of the chunks blobs are staged in. */
  get chunkBytes(): number {
    return this.options.chunkBytes;
  }

  /** Makes staged chunks visible as a blob, unless a DELETE came after `generation` was read. */
  async publish(
    staged: StagedBlob,
    options: { generation: string; state: BlobState; ttlMs: number; persistToken?: string },
  ): Promise<PublishOutcome> {
    const keys = this.scriptKeys(staged.key, staged);
    const code = (await PUBLISH.run(this.redis, keys, this.publishArgs(staged, options))) as number;
    const outcome = PUBLISH_CODES[code];
    if (outcome === undefined) throw new Error(`Unexpected publish result ${code}`);
    if (outcome !== 'published') await this.discard(staged);
    return outcome;
  }

  /**
   * Like `publish`, then waits until a replica of the shard has every write so far, in the
   * same round trip (docs/decisions/0081). `onPublished` runs once the blob is visible,
   * before the replica answered. `replicated` rejects with a 503 when no replica confirmed
   * in time; shards without replicas pass at once.
   */
  async publishReplicated(
    staged: StagedBlob,
    options: {
      generation: string;
      state: BlobState;
      persistToken: string;
      onPublished?: () => void;
    },
  ): Promise<{ outcome: PublishOutcome; replicated: Promise<void> }> {
    const timeoutMs =
      this.options.replicaWaitMs + Math.ceil(staged.size / REPLICATION_BYTES_PER_MS);
    const { code, replicas } = await this.replicatedPublishes.publish({
      keys: this.scriptKeys(staged.key, staged),
      args: this.publishArgs(staged, { ...options, ttlMs: 0 }),
      waitMs: timeoutMs,
      ...(options.onPublished === undefined ? {} : { onPublished: options.onPublished }),
    });
    const outcome = PUBLISH_CODES[code];
    if (outcome === undefined) throw new Error(`Unexpected publish result ${code}`);
    if (outcome !== 'published') await this.discard(staged);
    const failed =
      replicas instanceof Error
        ? (asServiceError(replicas, 'confirming replication') as Error)
        : null;
    const replicated =
      failed !== null
        ? Promise.reject(failed)
        : replicas === null || (replicas as number) >= 1
          ? Promise.resolve()
          : Promise.reject(
              new ServiceUnavailableError(
                `No replica confirmed blob ${staged.key} within ${timeoutMs} ms; retry`,
              ),
            );
    replicated.catch(() => undefined); // The caller may not wait for it (a lost chunk).
    return { outcome, replicated };
  }

  private publishArgs(
    staged: StagedBlob,
    options: { generation: string; state: BlobState; ttlMs: number; persistToken?: string },
  ): (string | number)[] {
    return [
      options.generation,
      staged.size,
      staged.chunkBytes,
      staged.chunkCount,
      staged.uploadId,
      options.state,
      staged.sha256 ?? '',
      options.state === 'cached' ? options.ttlMs : 0,
      options.persistToken ?? '',
    ];
  }

  /** Removes staged chunks that will not be published. */
  async discard(staged: StagedBlob): Promise<void> {
    const keys = this.chunkKeys(staged.key, staged.uploadId, staged.chunkCount);
    for (let i = 0; i < keys.length; i += 256) await this.redis.del(...keys.slice(i, i + 256));
  }

  /**
   * Pending → cached: the durable tier has it, so it may now be evicted. Only the journal
   * entry named by the manifest's persist token may do it, and only while the blob's
   * generation is still `generation` (the check and the mark are one step, so no DELETE
   * can fall between them): `deleted` when a DELETE came since, `superseded` when the
   * manifest is gone, was replaced or another entry persists it. A `sha256` the durable
   * tier reported is recorded on a manifest stored without one.
   */
  async markCached(
    manifest: Manifest,
    mark: { ttlMs: number; persistToken: string; generation: string; sha256?: string },
  ): Promise<'cached' | 'deleted' | 'superseded'> {
    const keys = this.scriptKeys(manifest.key, manifest);
    const code = (await MARK_CACHED.run(this.redis, keys, [
      manifest.uploadId,
      mark.ttlMs,
      mark.persistToken,
      mark.generation,
      mark.sha256 ?? '',
    ])) as number;
    return code === 1 ? 'cached' : code === -1 ? 'deleted' : 'superseded';
  }

  /**
   * Makes the published blob of `key` pending again, to be persisted by the journal entry
   * with `persistToken` (the durable tier lost the object a cached copy relied on). False
   * when no blob is published under `key`.
   */
  async restorePending(key: string, persistToken: string): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const manifest = await this.manifest(key);
      if (manifest === null) return false;
      const code = (await RESTORE_PENDING.run(this.redis, this.scriptKeys(key, manifest), [
        manifest.uploadId,
        persistToken,
      ])) as number;
      if (code !== -1) return code === 1;
    }
    throw new ServiceUnavailableError(`Blob ${key} kept changing while being restored`);
  }

  /** Drops a broken copy (a chunk gone) unless it was replaced meanwhile; no tombstone. */
  async dropCopy(manifest: Manifest): Promise<void> {
    await DROP_COPY.run(this.redis, this.scriptKeys(manifest.key, manifest), [manifest.uploadId]);
  }

  /** Records the SHA-256 its copy was found to have, on a blob stored without one. */
  async recordSha256(manifest: Manifest, sha256: string): Promise<void> {
    await RECORD_SHA256.run(
      this.redis,
      [blobKeys.manifest(manifest.key)],
      [manifest.uploadId, sha256],
    );
  }

  /** KEYS of the Lua scripts: manifest, generation, absent marker, then the chunks. */
  private scriptKeys(
    key: string,
    manifest: Pick<Manifest, 'uploadId' | 'chunkCount'> | null,
  ): string[] {
    return [
      blobKeys.manifest(key),
      blobKeys.generation(key),
      blobKeys.absent(key),
      ...(manifest === null ? [] : this.chunkKeys(key, manifest.uploadId, manifest.chunkCount)),
    ];
  }

  /** Deletes the blob and leaves a tombstone (a new generation). True if it was published. */
  async delete(key: string): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const manifest = await this.manifest(key);
      const code = (await DELETE.run(this.redis, this.scriptKeys(key, manifest), [
        manifest?.uploadId ?? '',
        this.options.tombstoneTtlMs,
      ])) as number;
      if (code !== -1) return code === 1;
    }
    throw new ServiceUnavailableError(`Blob ${key} kept changing while being deleted`);
  }

  /**
   * Waits until at least one replica of the blob's shard has every write made so far on
   * it. Shards without replicas (a single node, or right after a failover) pass at once.
   * Which shards have one is asked of the master when the slot map lists none.
   */
  async confirmReplicated(key: string, size: number): Promise<void> {
    const manifestKey = blobKeys.manifest(key);
    if (!(await this.replicaPresence.slotHasReplica(calculateSlot(manifestKey)))) return;
    // A large blob takes a while to stream to the replica: allow for it at a modest
    // replication rate on top of the fixed wait.
    const timeoutMs = this.options.replicaWaitMs + Math.ceil(size / REPLICATION_BYTES_PER_MS);
    // WAIT has no key; in a pipeline after a keyed command it runs on that key's node.
    const [, acknowledged] = await execPipeline(() =>
      this.redis.pipeline().exists(manifestKey).wait(1, timeoutMs),
    );
    if ((acknowledged as number) < 1) {
      throw new ServiceUnavailableError(
        `No replica confirmed blob ${key} within ${timeoutMs} ms; retry`,
      );
    }
  }

  async isKnownAbsent(key: string): Promise<boolean> {
    return (await this.redis.exists(blobKeys.absent(key))) === 1;
  }

  async rememberAbsent(key: string, ttlMs: number): Promise<void> {
    await this.redis.set(blobKeys.absent(key), '1', 'PX', ttlMs);
  }

  /** Remembers that the durable tier's copy of `key` is damaged (for a day). */
  async rememberDamaged(key: string): Promise<void> {
    await this.redis.set(blobKeys.damaged(key), '1', 'PX', 24 * 3_600_000);
  }

  async forgetDamaged(key: string): Promise<void> {
    await this.redis.del(blobKeys.damaged(key));
  }

  /**
   * Drops the fill lease and fill record whoever holds them (a DELETE fenced the fill): no
   * reader anywhere starts streaming behind that fill any more.
   */
  async dropFillLease(key: string): Promise<void> {
    await this.redis.del(blobKeys.fillLease(key), blobKeys.fillRecord(key));
  }

  async check(): Promise<void> {
    const info = await this.redis.cluster('INFO');
    if (!String(info).includes('cluster_state:ok'))
      throw new Error('The Redis cluster state is not ok');
  }
}

function manifestOf(key: string, fields: Record<string, string>): Manifest | null {
  if (fields.size === undefined || fields.up === undefined) return null;
  return {
    key,
    size: Number(fields.size),
    chunkBytes: Number(fields.chunk),
    chunkCount: Number(fields.n),
    uploadId: fields.up,
    state: fields.state === 'cached' ? 'cached' : 'pending',
    persistToken: fields.p ?? '',
    ...(fields.sha ? { sha256: fields.sha } : {}),
  };
}
