import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

/** Bytes covered by one recorded CRC-32 (docs/decisions/0055). */
export const CHECKED_PIECE_BYTES = 64 * 1024;

/**
 * The CRC-32 of every 64 KiB piece of a blob file, recorded in its meta file once its bytes
 * were verified against the key (docs/decisions/0055): later whole reads check each piece
 * against it instead of hashing the file with MD5 again.
 */
export interface PieceChecksums {
  /** Size of the file the table describes; it applies to no other size. */
  size: number;
  /** The CRC-32 of each piece in order, as big-endian 32-bit words, base64. */
  crc32: string;
  /**
   * CRC-32 of the table itself: a table damaged in the meta file reads as "none", so it is
   * never taken for damaged blob bytes (which would remove an intact blob).
   */
  seal: number;
}

/** Computes the piece checksums of bytes fed in order from the start of a blob. */
export class PieceChecksummer {
  private readonly crcs: number[] = [];
  private current = 0;
  private filled = 0;
  private size = 0;

  update(chunk: Buffer): void {
    this.size += chunk.length;
    for (let offset = 0; offset < chunk.length;) {
      const take = Math.min(CHECKED_PIECE_BYTES - this.filled, chunk.length - offset);
      this.current = crc32(chunk.subarray(offset, offset + take), this.current);
      this.filled += take;
      offset += take;
      if (this.filled === CHECKED_PIECE_BYTES) this.endPiece();
    }
  }

  /** The table of everything fed so far (call once, at the end). */
  result(): PieceChecksums {
    if (this.filled > 0) this.endPiece();
    const table = Buffer.allocUnsafe(4 * this.crcs.length);
    this.crcs.forEach((crc, index) => table.writeUInt32BE(crc, 4 * index));
    return { size: this.size, crc32: table.toString('base64'), seal: crc32(table) };
  }

  private endPiece(): void {
    this.crcs.push(this.current);
    this.current = 0;
    this.filled = 0;
  }
}

/** A pass-through that computes the piece checksums of what flows through it. */
export class PieceChecksumRecorder extends Transform {
  private readonly summer = new PieceChecksummer();

  get checksums(): PieceChecksums {
    return this.summer.result();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.summer.update(chunk);
    callback(null, chunk);
  }
}

/**
 * The recorded CRC-32 of each piece of a file of `size` bytes, or null when there is no
 * table for that size, or it does not match its seal (then the caller verifies by MD5).
 */
export function pieceTable(
  checksums: PieceChecksums | undefined,
  size: number,
): Uint32Array | null {
  if (checksums === undefined || checksums.size !== size) return null;
  const table = Buffer.from(checksums.crc32, 'base64');
  const pieces = Math.ceil(size / CHECKED_PIECE_BYTES);
  if (table.length !== 4 * pieces || crc32(table) !== checksums.seal) return null;
  const crcs = new Uint32Array(pieces);
  for (let index = 0; index < pieces; index++) crcs[index] = table.readUInt32BE(4 * index);
  return crcs;
}

/** True when `value` has the shape of `PieceChecksums` (a meta file is read from disk). */
export function isPieceChecksums(value: unknown): value is PieceChecksums {
  const candidate = value as Partial<PieceChecksums> | null | undefined;
  return (
    typeof candidate?.size === 'number' &&
    typeof candidate.crc32 === 'string' &&
    typeof candidate.seal === 'number'
  );
}

/** True when two tables are the same. */
export function samePieces(a: PieceChecksums | undefined, b: PieceChecksums): boolean {
  return a !== undefined && a.size === b.size && a.seal === b.seal && a.crc32 === b.crc32;
}

/** True when piece `index` (its bytes in `piece`) is the one the table recorded. */
export function pieceMatches(table: Uint32Array, index: number, piece: Buffer): boolean {
  return crc32(piece) === table[index];
}
