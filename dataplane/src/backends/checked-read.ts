import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CHECKED_PIECE_BYTES, pieceMatches } from './piece-checksums.ts';

/**
 * The whole of an open blob file of `size` bytes, each 64 KiB piece checked against the
 * CRC-32 recorded when the file was verified (docs/decisions/0055) before it is passed on:
 * no byte leaves unchecked, so a damaged piece (or a file cut short) ends the stream with
 * an error before its first damaged byte, and a client framed by Content-Length sees a cut
 * transfer. `onDamage` runs before the stream fails (it confirms the damage and removes
 * the copy). Pieces are read one at a time, as the consumer asks for them, so a reader
 * that stops reading holds one piece. The file is closed when the stream ends.
 */
export function checkedFileStream(
  handle: FileHandle,
  size: number,
  table: Uint32Array,
  onDamage: (detail: string) => Promise<unknown>,
): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    try {
      for (let index = 0, offset = 0; offset < size; index++, offset += CHECKED_PIECE_BYTES) {
        const length = Math.min(CHECKED_PIECE_BYTES, size - offset);
        const piece = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(piece, 0, length, offset);
        if (bytesRead !== length || !pieceMatches(table, index, piece)) {
          const detail =
            bytesRead !== length
              ? `the file ended at ${offset + bytesRead} bytes, not ${size}`
              : `piece ${index} (from byte ${offset}) does not match the CRC-32 recorded when it was verified`;
          await onDamage(detail);
          // Not a client's error: a transfer not yet begun is answered 500.
          throw new Error(`The stored copy is damaged: ${detail}`);
        }
        yield piece;
      }
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
  return Readable.from(pieces(), { objectMode: false, highWaterMark: 0 });
}
