import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Deterministic pseudo-random bytes: the same (size, seed) always gives the same blob. */
export function blobOf(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    if ((i & 3) === 0) {
      // xorshift32
      state = (state ^ (state << 13)) >>> 0;
      state = (state ^ (state >>> 17)) >>> 0;
      state = (state ^ (state << 5)) >>> 0;
    }
    out[i] = (state >>> ((i & 3) * 8)) & 0xff;
  }
  return out;
}

export function md5(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

export function contentMd5(data: Buffer | string): string {
  return createHash('md5').update(data).digest('base64');
}

export function sha256Base64(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('base64');
}

/**
 * A large blob generated on the fly in fixed-size pieces (never held whole), so tests can
 * move gigabytes with flat memory. `key()` hashes a first pass of the same bytes.
 */
export class GeneratedBlob {
  readonly size: number;
  private readonly piece: Buffer;

  constructor(size: number, seed = 7, pieceSize = 1024 * 1024) {
    this.size = size;
    this.piece = blobOf(pieceSize, seed);
  }

  private *pieces(): Generator<Buffer> {
    let sent = 0;
    let round = 0;
    while (sent < this.size) {
      const length = Math.min(this.piece.length, this.size - sent);
      const chunk = Buffer.from(this.piece.subarray(0, length));
      // Vary each piece so that no two are identical (a stamp of the piece number).
      if (length >= 4) chunk.writeUInt32LE(round >>> 0, 0);
      round += 1;
      sent += length;
      yield chunk;
    }
  }

  stream(): Readable {
    return Readable.from(this.pieces(), { objectMode: false });
  }

  key(): string {
    const hash = createHash('md5');
    for (const piece of this.pieces()) hash.update(piece);
    return hash.digest('hex');
  }
}

/** MD5 and length of a response body, read as a stream (never held whole). */
export async function digestOf(
  body: ReadableStream<Uint8Array> | NodeJS.ReadableStream,
): Promise<{ md5: string; size: number }> {
  const hash = createHash('md5');
  let size = 0;
  await pipeline(
    body,
    new Writable({
      write(chunk: Uint8Array, _encoding, callback) {
        size += chunk.length;
        hash.update(chunk);
        callback();
      },
    }),
  );
  return { md5: hash.digest('hex'), size };
}
