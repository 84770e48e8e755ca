import type { Readable } from 'node:stream';
import type { BlobInfo, BlobRead, ByteRange, PutOptions, PutResult } from './store.ts';

export type CacheOutcome = 'hit' | 'miss';

/** When an upload is acknowledged: once in the fast tier and journaled, or once durable. */
export type Durability = 'WriteBehind' | 'Sync';

export interface UploadOptions extends PutOptions {
  /** Overrides the service's default durability for this upload. */
  durability?: Durability;
}

export interface LocatedBlob {
  info: BlobInfo;
  /** `hit` when the fast tier has the blob, `miss` when only the durable tier has it. */
  cache: CacheOutcome;
}

export interface ServedBlob extends BlobRead {
  /** `hit` when served from the fast tier, `miss` when read through from the durable tier. */
  cache: CacheOutcome;
  /**
   * The stream follows a fill whose first bytes may take a while (they wait for chunks,
   * or for the whole blob's digest): the status is best sent at once.
   */
  behindFill?: true;
}

/**
 * What the HTTP layer needs from the tiers, whatever they are (embedded, or Redis + S3).
 * A miss is `null`; exceptions are failures of a tier.
 */
export interface BlobService {
  /** Metadata from whichever tier has the blob. */
  head(key: string): Promise<LocatedBlob | null>;
  /** Streams the blob (or `range` of it), filling the fast tier on a miss. */
  open(key: string, range?: ByteRange): Promise<ServedBlob | null>;
  /**
   * Stores an uploaded blob; resolves only once it is acknowledged-durable. May resolve
   * with `created: false` without reading `source` when the blob is already stored.
   */
  put(source: Readable, options: UploadOptions): Promise<PutResult>;
  /** Removes the blob from every tier; wins against fills and uploads already under way. */
  delete(key: string): Promise<boolean>;
  /** The subset of `keys` that is not stored. */
  missing(keys: readonly string[]): Promise<string[]>;
  /** Resolves when the tiers requests cannot do without are reachable (readiness). */
  check(): Promise<void>;
  /**
   * The whole blob when an in-process tier holds it, found without waiting on anything
   * (the HTTP fast path for hot blobs); null otherwise. Counts as a cache hit.
   */
  peekInMemory?(key: string): ServedBlob | null;
}

/** Labels an in-memory read as a hit without touching its (lazily made) stream. */
export function servedFromMemory(read: BlobRead): ServedBlob {
  const served: ServedBlob = {
    info: read.info,
    chunks: read.chunks,
    cache: 'hit',
    get stream() {
      return read.stream;
    },
  };
  if (read.release !== undefined) served.release = read.release;
  return served;
}
