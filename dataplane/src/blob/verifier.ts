import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BlobTooLargeError, DigestMismatchError, SizeMismatchError } from './errors.ts';

export interface VerifierExpectations {
  /** Lowercase hex MD5 the bytes must hash to; when absent the digest is only computed. */
  md5?: string;
  /** Exact byte count (e.g. from Content-Length). */
  size?: number;
  /** Base64 SHA-256 the bytes must hash to (from `Repr-Digest`). */
  sha256?: string;
  /** Hard limit: the stream fails as soon as it passes this many bytes. */
  maxBytes?: number;
}

export interface VerifierHooks {
  /**
   * Runs when the bytes turn out not to match, before the stream fails: whatever it does
   * (remove the damaged copy) is done by the time any consumer sees the failure.
   */
  onMismatch?: (error: Error) => Promise<void>;
}

export interface VerifiedDigest {
  md5: string;
  size: number;
  /** Base64 SHA-256, present when one was expected. */
  sha256?: string;
}

/**
 * Passes bytes through unchanged while hashing them, and fails the stream in `flush`, before
 * the consumer sees the end, when size or digest differ from what was expected. Consumers
 * therefore publish a blob only after the stream ended without error.
 *
 * The most recent chunk is held back until the digest is known: a reader whose length is
 * framed (an HTTP client with Content-Length) can then never receive every byte of a blob
 * that fails verification, so damaged bytes never look like a complete transfer.
 */
export class DigestVerifier extends Transform {
  private readonly md5: Hash = createHash('md5');
  private readonly sha256: Hash | undefined;
  private readonly expected: VerifierExpectations;
  private bytes = 0;
  private verified: VerifiedDigest | undefined;
  private held: Buffer | undefined;
  private readonly hooks: VerifierHooks;

  constructor(expected: VerifierExpectations, hooks: VerifierHooks = {}) {
    super();
    this.expected = expected;
    this.hooks = hooks;
    this.sha256 = expected.sha256 === undefined ? undefined : createHash('sha256');
  }

  /** The verified digest; only defined once the stream has finished successfully. */
  get result(): VerifiedDigest | undefined {
    return this.verified;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    const { maxBytes, size } = this.expected;
    if (maxBytes !== undefined && this.bytes > maxBytes) {
      callback(new BlobTooLargeError(`The blob exceeds the limit of ${maxBytes} bytes`));
      return;
    }
    if (size !== undefined && this.bytes > size) {
      this.fail(
        new SizeMismatchError(`The body is longer than the declared ${size} bytes`),
        callback,
      );
      return;
    }
    this.md5.update(chunk);
    this.sha256?.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const { md5: expectedMd5, size, sha256: expectedSha256 } = this.expected;
    if (size !== undefined && this.bytes !== size) {
      this.fail(new SizeMismatchError(`Received ${this.bytes} bytes, expected ${size}`), callback);
      return;
    }
    const md5 = this.md5.digest('hex');
    if (expectedMd5 !== undefined && md5 !== expectedMd5) {
      this.fail(
        new DigestMismatchError(`The content's MD5 is ${md5}, not the key ${expectedMd5}`),
        callback,
      );
      return;
    }
    const sha256 = this.sha256?.digest('base64');
    if (expectedSha256 !== undefined && sha256 !== expectedSha256) {
      this.fail(
        new DigestMismatchError(
          `The content's SHA-256 is ${sha256}, not the Repr-Digest ${expectedSha256}`,
        ),
        callback,
      );
      return;
    }
    this.verified = { md5, size: this.bytes, ...(sha256 === undefined ? {} : { sha256 }) };
    callback(null, this.held);
  }

  private fail(error: Error, callback: TransformCallback): void {
    this.held = undefined;
    const { onMismatch } = this.hooks;
    if (onMismatch === undefined) {
      callback(error);
      return;
    }
    onMismatch(error).then(
      () => callback(error),
      () => callback(error),
    );
  }
}
