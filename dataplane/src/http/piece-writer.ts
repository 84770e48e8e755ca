import type { Response } from 'express';
import type { PieceSource } from '../blob/piece-source.ts';
import { PIECE_BYTES, readAheadBudget } from '../redis/chunks.ts';

/** Pieces lent while the read-ahead budget has room; 64 KiB ones beyond it. */
const LARGE_PIECE_BYTES = 1024 * 1024;
/** Free buffers kept for the next responses (8 MiB + 2 MiB at most). */
const KEEP_LARGE = 8;
const KEEP_SMALL = 32;
const freeLarge: Buffer[] = [];
const freeSmall: Buffer[] = [];

interface Lease {
  buffer: Buffer;
  /** Gives the buffer back; only once the socket no longer reads it. Safe to call twice. */
  give(): void;
}

/**
 * A buffer for the next piece. Large ones count against the process's read-ahead budget
 * while lent, as chunk reads do (docs/decisions/0018), so readers that stop reading hold
 * at most two pieces each and the large ones are bounded by the budget.
 */
function lend(): Lease {
  const budget = readAheadBudget();
  const large = budget.tryTake(LARGE_PIECE_BYTES);
  const free = large ? freeLarge : freeSmall;
  const buffer = free.pop() ?? Buffer.allocUnsafeSlow(large ? LARGE_PIECE_BYTES : PIECE_BYTES);
  let given = false;
  return {
    buffer,
    give() {
      if (given) return;
      given = true;
      if (large) budget.give(LARGE_PIECE_BYTES);
      if (free.length < (large ? KEEP_LARGE : KEEP_SMALL)) free.push(buffer);
    },
  };
}

function prematureClose(): Error {
  return Object.assign(new Error('The client went away'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/** Resolves once `res` drained, rejects if it closes first. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      reject(prematureClose());
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/**
 * Writes the body from `source` (docs/decisions/0056): each piece is read into a lent
 * buffer, which goes back to a free list once the socket wrote it (the write's callback),
 * or once the response closed (by then the socket no longer reads it). So a large blob is
 * served without allocating a buffer per piece, which in a process with a large heap cost
 * more in garbage collection than the copies themselves. The next piece is read while the
 * previous one is written. On a failure of the source the error is rethrown, and a response
 * already under way destroyed (the client sees a cut transfer). The source is always closed.
 */
export async function writePieces(
  res: Response,
  source: PieceSource,
  sent: (bytes: number) => void,
): Promise<void> {
  // Written pieces: given back by their write's callback, or when the response closed
  // (the socket is closed then: it reads none of them any more).
  const written = new Set<Lease>();
  const giveWritten = (): void => {
    for (const lease of written) lease.give();
    written.clear();
  };
  res.once('close', giveWritten);
  // The piece being read into: never given back while a read may still fill it.
  let filling: Lease | undefined;
  let writing: Promise<void> | undefined;
  try {
    for (;;) {
      filling = lend();
      const read = await source.read(filling.buffer);
      if (writing !== undefined) await writing;
      if (res.destroyed) throw prematureClose();
      if (read === 0) break;
      const lease = filling;
      filling = undefined;
      const bytes = read === lease.buffer.length ? lease.buffer : lease.buffer.subarray(0, read);
      written.add(lease);
      sent(read);
      const more = res.write(bytes, () => {
        written.delete(lease);
        lease.give();
      });
      writing = more ? undefined : drained(res);
      // Awaited before the next write; if the loop ends first, its rejection is no one's.
      writing?.catch(() => undefined);
    }
    res.end();
  } catch (error) {
    // Nothing sent yet: the error is answered as a problem. Else the transfer is cut.
    if (res.headersSent) res.destroy();
    throw error;
  } finally {
    filling?.give();
    await source.close();
  }
}
