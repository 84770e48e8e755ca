import { Readable } from 'node:stream';

/**
 * Bytes of a blob read straight into buffers the reader lends (docs/decisions/0056): the
 * HTTP layer lends buffers it takes back once the socket wrote them, so serving a large
 * file allocates nothing per piece. Reads are in order; each fills `into` unless the bytes
 * end first.
 */
export interface PieceSource {
  /**
   * Reads the next bytes into `into` (whose length is a multiple of 64 KiB); resolves with
   * how many, 0 once every byte was read. Rejects when the bytes cannot be read or are
   * found damaged: the transfer must then be cut.
   */
  read(into: Buffer): Promise<number>;
  /** Releases what the source holds (its file); safe to call more than once. */
  close(): Promise<void>;
}

/** Decides the size of each piece a stream reads (a budget can), and learns of its use. */
export interface PieceSizer {
  take(): number;
  /** The consumer asked for more after a piece. */
  handedOnOne(): void;
  /** The stream ended or was destroyed. */
  close(): void;
}

/** Pieces of one size, not counted anywhere. */
export function fixedPieces(bytes: number): PieceSizer {
  return { take: () => bytes, handedOnOne: () => undefined, close: () => undefined };
}

/**
 * The same bytes as a stream, for consumers other than the HTTP layer's writer: each piece
 * in a buffer of its own, sized by `sizer`, read only as the consumer asks. The source is
 * closed when the stream ends or is destroyed.
 */
export function streamOfPieces(source: PieceSource, sizer: PieceSizer): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const piece = Buffer.allocUnsafe(sizer.take());
        const read = await source.read(piece);
        if (read === 0) return;
        yield read === piece.length ? piece : piece.subarray(0, read);
        sizer.handedOnOne();
      }
    } finally {
      sizer.close();
      await source.close();
    }
  }
  return Readable.from(pieces(), { objectMode: false, highWaterMark: 0 });
}
