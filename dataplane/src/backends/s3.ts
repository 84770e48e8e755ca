// Over 400 lines: the S3 store's three ways to put (conditional, one request, multipart)
// share the one-content-per-key rule and the abort handling, kept together here.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  blobInfo,
  type BlobInfo,
  type BlobRead,
  type BlobStore,
  type ByteRange,
  type ListedBlob,
  type PutOptions,
  type PutResult,
} from '../blob/store.ts';
import { DigestConflictError } from '../blob/errors.ts';
import { contentSha256 } from '../blob/verified-read.ts';
import { DigestVerifier } from '../blob/verifier.ts';
import { PartCollector } from './part-collector.ts';
import { isPreconditionFailed, isS3Miss } from './s3-errors.ts';

export interface S3StoreOptions {
  client: S3Client;
  bucket: string;
  /** Object keys are `<prefix>/<md5[0:2]>/<md5>`; an empty prefix drops the first part. */
  prefix: string;
  /** Multipart part size; blobs up to this size go up in one PutObject. @default 8 MiB */
  partBytes?: number;
}

const SHA256_METADATA = 'sha256';
/** Written on every object this store verified against its key before keeping it. */
const MD5_METADATA = 'md5';

/**
 * The durable tier on S3 (or any S3-compatible server). Uploads are split into parts held
 * one at a time (memory is bounded by the part size), each sent with its `Content-MD5` so
 * the server rejects a part damaged in transit; the whole blob's MD5 is verified before the
 * multipart upload is completed, so a damaged blob never becomes an object.
 *
 * An object already under the key is kept only when it can be trusted: its ETag is the
 * key (a single-part object, whose ETag the server computed as its MD5) or it carries the
 * metadata this store writes on verified uploads. Any other object (damaged, or written by
 * another tool) is replaced by the verified bytes, so a re-upload repairs it.
 */
export class S3Store implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partBytes: number;

  constructor(options: S3StoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = options.prefix.replace(/\/+$/, '');
    this.partBytes = options.partBytes ?? 8 * 1024 * 1024;
    skipPayloadHashWithContentMd5(this.client);
  }

  objectKey(key: string): string {
    const path = `${key.slice(0, 2)}/${key}`;
    return this.prefix === '' ? path : `${this.prefix}/${path}`;
  }

  async head(key: string): Promise<BlobInfo | null> {
    return (await this.headObject(key))?.info ?? null;
  }

  private async headObject(key: string): Promise<{ info: BlobInfo; trusted: boolean } | null> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      const etag = (head.ETag ?? '').replace(/"/g, '');
      return {
        info: infoOf(key, head.ContentLength ?? 0, head.Metadata),
        trusted: etag === key || head.Metadata?.[MD5_METADATA] === key,
      };
    } catch (error) {
      if (isS3Miss(error)) return null;
      throw error;
    }
  }

  /**
   * The stored object when it can stand for the put (trusted, same content), null when the
   * put must write. A key holds one content (docs/decisions/0017): when the two sides'
   * SHA-256s are not both known, the missing one is computed from its bytes (the stored
   * object's, or the source's); `DigestConflictError` when they differ.
   */
  private async existingCopy(
    key: string,
    source: Readable,
    options: PutOptions,
  ): Promise<PutResult | null> {
    if (options.replaceExisting === true) return null;
    const existing = await this.headObject(key);
    if (existing === null || !existing.trusted) return null;
    const { size } = existing.info;
    const stored =
      existing.info.sha256 ??
      (options.sha256 === undefined
        ? undefined
        : await this.get(key).then((read) =>
            read === null ? null : contentSha256(read.stream, { key, size }),
          ));
    if (stored === null) return null; // Damaged after all: replace it.
    const incoming =
      options.sha256 ??
      (stored === undefined ? undefined : await contentSha256(source, { key, size }));
    if (incoming !== stored) {
      throw new DigestConflictError(
        `The durable tier holds other content under ${key} (SHA-256 ${stored}); this blob's is ${incoming ?? 'unknown'}`,
      );
    }
    return { info: blobInfo(key, size, stored), created: false };
  }

  async get(key: string, range?: ByteRange): Promise<BlobRead | null> {
    try {
      const object = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
      const total =
        range === undefined
          ? (object.ContentLength ?? 0)
          : totalFromContentRange(object.ContentRange);
      return { info: infoOf(key, total, object.Metadata), stream: object.Body as Readable };
    } catch (error) {
      if (isS3Miss(error)) return null;
      throw error;
    }
  }

  async put(source: Readable, options: PutOptions): Promise<PutResult> {
    const { key } = options;
    if (key === undefined)
      throw new Error('S3Store.put needs the key: spool unkeyed uploads first');
    if (this.mayPutUnlessTaken(options)) return this.putUnlessTaken(key, source, options);
    let existing;
    try {
      existing = await this.existingCopy(key, source, options);
    } catch (error) {
      source.destroy();
      throw error;
    }
    if (existing !== null) {
      source.destroy();
      return existing;
    }
    const metadata: Record<string, string> = { [MD5_METADATA]: key };
    if (options.sha256 !== undefined) metadata[SHA256_METADATA] = options.sha256;
    const objectKey = this.objectKey(key);
    if (
      options.sourceVerified === true &&
      options.size !== undefined &&
      options.size <= this.partBytes
    ) {
      await this.putInOneRequest(source, {
        objectKey,
        key,
        size: options.size,
        metadata,
        signal: options.signal,
      });
      return { info: blobInfo(key, options.size, options.sha256), created: true };
    }
    const verifier = new DigestVerifier({
      md5: key,
      size: options.size,
      sha256: options.sha256,
      maxBytes: options.maxBytes,
    });
    const parts = new PartCollector(this.partBytes, options.size);
    let uploadId: string | undefined;
    const etags: { PartNumber: number; ETag: string }[] = [];
    const sendPart = async (part: Buffer): Promise<void> => {
      if (uploadId === undefined) {
        const created = await this.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.bucket,
            Key: objectKey,
            Metadata: metadata,
          }),
        );
        uploadId = created.UploadId;
      }
      const PartNumber = etags.length + 1;
      const uploaded = await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          PartNumber,
          Body: part,
          ContentLength: part.length,
          ContentMD5: createHash('md5').update(part).digest('base64'),
        }),
      );
      etags.push({ PartNumber, ETag: uploaded.ETag ?? '' });
    };
    try {
      // Every full part goes up as soon as it is collected; the last (short) part waits
      // until the verifier has seen the end, so nothing completes before the MD5 is known.
      await pipeline(source, verifier, parts.writable(sendPart), { signal: options.signal });
      const last = parts.rest();
      if (uploadId === undefined) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: objectKey,
            Body: last,
            ContentLength: last.length,
            ContentMD5: Buffer.from(key, 'hex').toString('base64'),
            Metadata: metadata,
          }),
        );
      } else {
        if (last.length > 0) await sendPart(last);
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            MultipartUpload: { Parts: etags },
          }),
        );
      }
    } catch (error) {
      if (uploadId !== undefined) {
        await this.client
          .send(
            new AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: objectKey,
              UploadId: uploadId,
            }),
          )
          .catch(() => undefined);
      }
      throw error;
    }
    return {
      info: blobInfo(key, verifier.result?.size ?? 0, options.sha256),
      created: true,
    };
  }

  /**
   * Verified bytes small enough for one request, which can be read again: no HEAD first.
   * The put is conditional (`If-None-Match: *`), so it never replaces a stored object.
   */
  private mayPutUnlessTaken(options: PutOptions): options is PutOptions & { size: number } {
    return (
      options.sourceVerified === true &&
      options.replaceExisting !== true &&
      options.reread !== undefined &&
      options.size !== undefined &&
      options.size <= this.partBytes
    );
  }

  /**
   * A conditional put; when the key is taken, the stored object is compared with the bytes
   * read again, as `existingCopy` does before an unconditional put (one content per key,
   * docs/decisions/0017; docs/decisions/0082), and replaced only when it cannot stand for it.
   */
  private async putUnlessTaken(
    key: string,
    source: Readable,
    options: PutOptions & { size: number },
  ): Promise<PutResult> {
    const metadata: Record<string, string> = { [MD5_METADATA]: key };
    if (options.sha256 !== undefined) metadata[SHA256_METADATA] = options.sha256;
    const upload = { objectKey: this.objectKey(key), key, size: options.size, metadata };
    const created = { info: blobInfo(key, options.size, options.sha256), created: true };
    try {
      await this.putInOneRequest(source, { ...upload, signal: options.signal, unlessTaken: true });
      return created;
    } catch (error) {
      if (!isPreconditionFailed(error)) throw error;
    }
    const again = options.reread!();
    let existing;
    try {
      existing = await this.existingCopy(key, again, options);
    } finally {
      again.destroy();
    }
    if (existing !== null) return existing;
    await this.putInOneRequest(options.reread!(), { ...upload, signal: options.signal });
    return created;
  }

  /**
   * Streams a verified blob up in one request: the server checks Content-MD5 (the key)
   * before it keeps the object, so the bytes are neither hashed nor held here. The SDK
   * pipes the body without watching it for errors, so a failing source (a chunk evicted
   * mid-read) aborts the request here; otherwise its error would go unhandled.
   */
  private async putInOneRequest(
    source: Readable,
    upload: {
      objectKey: string;
      key: string;
      size: number;
      metadata: Record<string, string>;
      signal: AbortSignal | undefined;
      /** Fails with 412 instead of replacing a stored object. */
      unlessTaken?: boolean;
    },
  ): Promise<void> {
    const aborter = new AbortController();
    let sourceFailure: unknown;
    const onSourceError = (error: unknown): void => {
      sourceFailure = error;
      aborter.abort(error);
    };
    const onAbort = (): void => aborter.abort(upload.signal?.reason);
    source.once('error', onSourceError);
    upload.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: upload.objectKey,
          Body: source,
          ContentLength: upload.size,
          ContentMD5: Buffer.from(upload.key, 'hex').toString('base64'),
          Metadata: upload.metadata,
          ...(upload.unlessTaken === true ? { IfNoneMatch: '*' } : {}),
        }),
        { abortSignal: aborter.signal },
      );
    } catch (error) {
      throw sourceFailure ?? error;
    } finally {
      upload.signal?.removeEventListener('abort', onAbort);
      source.off('error', onSourceError);
      // Keep a late error (after the request ended) from going unhandled.
      source.on('error', () => undefined);
      source.destroy();
    }
  }

  async delete(key: string): Promise<boolean> {
    const existed = (await this.head(key)) !== null;
    await this.client.send(
      new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
    );
    return existed;
  }

  /** Object names only, so without SHA-256 (a HEAD each would cost too much). */
  async *list(): AsyncIterable<ListedBlob> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix === '' ? undefined : `${this.prefix}/`,
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key?.split('/').pop() ?? '';
        if (!/^[0-9a-f]{32}$/.test(key)) continue;
        const modified = object.LastModified?.getTime();
        yield {
          key,
          size: object.Size ?? 0,
          ...(modified === undefined ? {} : { modifiedMs: modified }),
        };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }
}

function infoOf(key: string, size: number, metadata: Record<string, string> | undefined): BlobInfo {
  return blobInfo(key, size, metadata?.[SHA256_METADATA]);
}

/** Clients already set up by `skipPayloadHashWithContentMd5` (a client may back several stores). */
const unsignedPayloadClients = new WeakSet<S3Client>();

/**
 * Signs requests that carry Content-MD5 without hashing their body (`UNSIGNED-PAYLOAD`):
 * the server checks that digest, so a second hash of every byte (SHA-256 for the
 * signature) would cost CPU and add no protection.
 */
function skipPayloadHashWithContentMd5(client: S3Client): void {
  if (unsignedPayloadClients.has(client)) return;
  unsignedPayloadClients.add(client);
  client.middlewareStack.add(
    (next) => (args) => {
      const headers = (args.request as { headers?: Record<string, string> }).headers;
      if (headers !== undefined && Object.keys(headers).some((name) => /^content-md5$/i.test(name)))
        headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'blobcacheUnsignedPayload' },
  );
}

function totalFromContentRange(header: string | undefined): number {
  const total = /\/(\d+)$/.exec(header ?? '')?.[1];
  if (total === undefined)
    throw new Error(`S3 answered a ranged GET without a usable Content-Range ('${header}')`);
  return Number(total);
}
