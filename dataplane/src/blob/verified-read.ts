import { pipeline, Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import type { ByteRange } from './store.ts';
import { DigestVerifier } from './verifier.ts';

/**
 * Passes on only the bytes `start..end` (inclusive) of a whole-blob stream, and holds the
 * last piece it passes on back until its source has ended: behind a `DigestVerifier`, a
 * client framed by Content-Length then never receives all of a range cut from a blob that
 * fails verification, even when the range ends long before the blob does.
 */
export class RangeWindow extends Transform {
  private readonly first: number;
  private readonly last: number;
  private position = 0;
  private held: Buffer | undefined;

  constructor(range: ByteRange) {
    super();
    this.first = range.start;
    this.last = range.end;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const chunkStart = this.position;
    this.position += chunk.length;
    const from = Math.max(this.first - chunkStart, 0);
    const to = Math.min(this.last + 1 - chunkStart, chunk.length);
    if (from >= to) {
      callback();
      return;
    }
    const previous = this.held;
    this.held = from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to);
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    callback(null, this.held);
  }
}

/**
 * The bytes of a whole-blob stream from an unverified source (the durable tier), checked
 * against the key and size as they pass; with `range`, only that part of them, still held
 * back at its end until the whole blob is verified. The stream fails instead of ending when
 * the bytes do not match.
 */
export function verifiedRead(
  source: Readable,
  expected: { key: string; size: number },
  range?: ByteRange,
): Readable {
  const verifier = new DigestVerifier({ md5: expected.key, size: expected.size });
  const done = (): void => undefined;
  return range === undefined
    ? pipeline(source, verifier, done)
    : pipeline(source, verifier, new RangeWindow(range), done);
}

/**
 * The SHA-256 (base64) of a stored copy, read whole and kept nowhere; null when the copy is
 * damaged (its MD5 is not the key, or its size is not `size`). Tells two contents with one
 * MD5 apart (docs/decisions/0017-md5-collisions-one-key-one-content.md).
 */
export async function contentSha256(
  source: Readable,
  expected: { key: string; size: number },
): Promise<string | null> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let size = 0;
  const hash = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      md5.update(chunk);
      sha256.update(chunk);
      size += chunk.length;
      callback();
    },
  });
  await pipelineAsync(source, hash);
  if (size !== expected.size || md5.digest('hex') !== expected.key) return null;
  return sha256.digest('base64');
}
