import type { FileHandle } from 'node:fs/promises';
import type { PieceSource } from '../blob/piece-source.ts';
import { HELD_DOWNSTREAM, PIECE_BYTES, type ReadAheadBudget } from '../redis/chunks.ts';

/**
 * Reads of a file in large pieces while the process's read-ahead budget has room for
 * them, else in 64 KiB pieces, like chunk reads from Redis (docs/decisions/0018): a large
 * piece counts against the budget until it is `HELD_DOWNSTREAM` pieces behind (it may
 * still sit in a buffer downstream), so readers that stop reading hold a few small pieces
 * each, whatever the size of the blob.
 */
export class BudgetedPieces {
  private readonly budget: ReadAheadBudget;
  private readonly largeBytes: number;
  private handedOn: number[] = [];

  constructor(budget: ReadAheadBudget, largeBytes: number) {
    this.budget = budget;
    this.largeBytes = largeBytes;
  }

  /** The size of the next piece, at most `most` bytes: large while the budget has room. */
  take(most = Number.POSITIVE_INFINITY): number {
    const large = most > PIECE_BYTES && this.budget.tryTake(this.largeBytes);
    this.handedOn.push(large ? this.largeBytes : 0);
    return Math.min(most, large ? this.largeBytes : PIECE_BYTES);
  }

  /** Reads the next piece at `offset`, at most `most` bytes; empty at the end of the file. */
  async read(handle: FileHandle, offset: number, most: number): Promise<Buffer> {
    const length = this.take(most);
    const piece = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(piece, 0, length, offset);
    return bytesRead === length ? piece : piece.subarray(0, bytesRead);
  }

  /** The consumer asked for more: pieces far enough behind no longer count. */
  handedOnOne(): void {
    while (this.handedOn.length > HELD_DOWNSTREAM) this.budget.give(this.handedOn.shift()!);
  }

  /** Gives back everything still counted (the read ended or was abandoned). */
  close(): void {
    for (const taken of this.handedOn) this.budget.give(taken);
    this.handedOn = [];
  }
}

/**
 * Bytes `from..end` of an open file as a piece source; `close` closes the file (and calls
 * `onClose`, once).
 */
export function fileRangeSource(
  handle: FileHandle,
  from: number,
  end: number,
  onClose: () => void,
): PieceSource {
  let offset = from;
  let closed = false;
  return {
    async read(into) {
      const length = Math.min(into.length, end + 1 - offset);
      if (length <= 0) return 0;
      const { bytesRead } = await handle.read(into, 0, length, offset);
      if (bytesRead === 0) throw new Error('The local copy ended short');
      offset += bytesRead;
      return bytesRead;
    },
    async close() {
      if (closed) return;
      closed = true;
      onClose();
      await handle.close().catch(() => undefined);
    },
  };
}
