import type { FileHandle } from 'node:fs/promises';
import { fixedPieces, streamOfPieces, type PieceSource } from '../blob/piece-source.ts';
import type { BlobRead } from '../blob/store.ts';
import { CHECKED_PIECE_BYTES, pieceMatches } from './piece-checksums.ts';

/**
 * The whole of an open blob file of `size` bytes, each 64 KiB piece checked against the
 * CRC-32 recorded when the file was verified (docs/decisions/0055) before it is passed on:
 * no byte leaves unchecked, so a damaged piece (or a file cut short) fails the read before
 * its first damaged byte, and a client framed by Content-Length sees a cut transfer.
 * `onDamage` runs before the read fails (it confirms the damage and removes the copy).
 * As a stream, pieces are read one at a time as the consumer asks, so a reader that stops
 * reading holds one piece. The file is closed when the read ends.
 */
export function checkedFileRead(
  handle: FileHandle,
  size: number,
  table: Uint32Array,
  onDamage: () => Promise<unknown>,
): Pick<BlobRead, 'stream' | 'source'> {
  let offset = 0;
  let closed = false;
  const damaged = async (detail: string): Promise<never> => {
    await onDamage();
    // Not a client's error: the transfer is cut (or, not yet begun, answered 500).
    throw new Error(`The stored copy is damaged: ${detail}`);
  };
  const source: PieceSource = {
    async read(into) {
      const length = Math.min(into.length, size - offset);
      if (length <= 0) return 0;
      if (into.length % CHECKED_PIECE_BYTES !== 0)
        throw new Error(`Checked reads go by whole pieces, not ${into.length} bytes`);
      const { bytesRead } = await handle.read(into, 0, length, offset);
      if (bytesRead !== length)
        return damaged(`the file ended at ${offset + bytesRead} bytes, not ${size}`);
      for (let at = 0; at < length; at += CHECKED_PIECE_BYTES) {
        const index = (offset + at) / CHECKED_PIECE_BYTES;
        const piece = into.subarray(at, Math.min(at + CHECKED_PIECE_BYTES, length));
        if (!pieceMatches(table, index, piece))
          return damaged(`piece ${index} does not match the CRC-32 recorded when verified`);
      }
      offset += length;
      return length;
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close().catch(() => undefined);
    },
  };
  return { source, stream: streamOfPieces(source, fixedPieces(CHECKED_PIECE_BYTES)) };
}
