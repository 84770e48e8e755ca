import type { PieceSource } from './piece-source.ts';
import type { Readable } from 'node:stream';

/** What is known of a stored blob without reading it. */
export interface BlobInfo {
  key: string;
  size: number;
  /** Base64 SHA-256 of the content, when the uploader supplied and we verified one. */
  sha256?: string;
}

/** A `BlobInfo`, leaving `sha256` out when there is none (it is optional, never undefined). */
export function blobInfo(key: string, size: number, sha256: string | undefined): BlobInfo {
  return sha256 === undefined ? { key, size } : { key, size, sha256 };
}

/** A blob as a listing of its store names it. */
export interface ListedBlob extends BlobInfo {
  /** When the store last wrote it (Unix ms), where the store knows (S3 `LastModified`, a file's mtime). */
  modifiedMs?: number;
}

/** An inclusive byte range, already checked against the blob's size. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobRead {
  info: BlobInfo;
  /** The whole blob, or just `range` when one was asked for. */
  stream: Readable;
  /**
   * The same bytes when they are already in memory (an in-process tier): the HTTP layer
   * then writes them out directly instead of through a stream. `stream` is unused then.
   */
  chunks?: readonly Buffer[];
  /**
   * The same bytes as a source the HTTP layer reads into buffers it lends and reuses (large
   * reads of files, docs/decisions/0056). `stream` is unused then; the writer closes it.
   */
  source?: PieceSource;
  /**
   * For reads served by reference from memory: call once `chunks` are no longer in use (a
   * response finished or was cut), so their bytes stop counting against the tier's budget.
   * Safe to call more than once.
   */
  release?: () => void;
}

export interface PutOptions {
  /** The key the content must hash to; when absent the store names the blob by its MD5. */
  key?: string;
  /** Exact body size when known up front (Content-Length). */
  size?: number;
  /** Base64 SHA-256 the content must hash to. */
  sha256?: string;
  /** The put fails with `BlobTooLargeError` past this many bytes. */
  maxBytes?: number;
  /** Aborting the signal abandons the put; nothing is published. */
  signal?: AbortSignal;
  /**
   * The bytes were already verified against `key`, `size` and `sha256` on their way into
   * another tier (staged chunks copied to the durable tier). A store may then skip hashing
   * them again where its server checks the digest anyway; it must still never keep a blob
   * whose content differs from its key.
   */
  sourceVerified?: boolean;
  /**
   * The stored copy is known to be damaged: replace it even where it looks intact. (A store
   * replaces a copy it can tell is damaged anyway.)
   */
  replaceExisting?: boolean;
  /**
   * The same verified bytes again, from their start. A store that finds the key taken
   * after it started writing compares the stored copy with these instead of asking first.
   */
  reread?: () => Readable;
}

export interface PutResult {
  info: BlobInfo;
  /** False when the blob was already stored (the new bytes were verified and dropped). */
  created: boolean;
}

/**
 * A tier that stores whole blobs by key. Implementations must be safe for concurrent use by
 * many requests; every method may run while any other runs on the same key.
 *
 * A miss is `null` (or `false`), never an exception: exceptions mean the tier failed.
 */
export interface BlobStore {
  /** Metadata of a stored blob, or null. */
  head(key: string): Promise<BlobInfo | null>;
  /**
   * Like `head`, but null unless the stored copy is known intact (verified when stored and
   * unchanged since), so that an upload may be answered without reading its body. Stores
   * that cannot tell leave it out.
   */
  headIntact?(key: string): Promise<BlobInfo | null>;
  /**
   * Opens a blob for reading, or null when it is not stored. The stream fails (rather than
   * ending early) if the blob disappears or is found damaged while being read.
   */
  get(key: string, range?: ByteRange): Promise<BlobRead | null>;
  /**
   * Consumes `source` and publishes the blob atomically: readers see all of it or none of
   * it. The MD5 (and size, SHA-256) are verified before publishing; on any failure nothing
   * is left behind and the promise rejects with a `BlobcacheError` or the source's error.
   * Concurrent puts of one key both succeed; one of them reports `created: false`. A key
   * holds one content: a put whose SHA-256 differs from the stored copy's fails with
   * `DigestConflictError` and changes nothing.
   */
  put(source: Readable, options: PutOptions): Promise<PutResult>;
  /** Removes the blob; false when it was not stored. */
  delete(key: string): Promise<boolean>;
  /** Every stored blob, in no particular order. */
  list(): AsyncIterable<ListedBlob>;
  /** Resolves when the tier can serve; rejects with the reason otherwise. */
  check(): Promise<void>;
}
