import { Writable } from 'node:stream';

/**
 * Gathers a stream into parts of exactly `partBytes` (the last one shorter), holding at
 * most one part in memory. Full parts are handed to `onPart` as they complete, with
 * backpressure: the stream waits while a part is being sent.
 */
export class PartCollector {
  private readonly partBytes: number;
  private part: Buffer | undefined;
  private filled = 0;
  private remaining: number | undefined;

  /** `expectedBytes`, when known, sizes a blob's only part to the blob instead of a full part. */
  constructor(partBytes: number, expectedBytes?: number) {
    this.partBytes = partBytes;
    this.remaining = expectedBytes;
  }

  /**
   * Room for the next bytes: allocated when the first byte arrives, so a short blob never
   * costs a full part, and grown to a full part only if more bytes come than expected.
   */
  private room(): Buffer {
    if (this.part === undefined) {
      const size =
        this.remaining === undefined ? this.partBytes : Math.min(this.partBytes, this.remaining);
      this.part = Buffer.allocUnsafe(Math.max(1, size));
    } else if (this.filled === this.part.length) {
      const grown = Buffer.allocUnsafe(this.partBytes);
      this.part.copy(grown);
      this.part = grown;
    }
    return this.part;
  }

  writable(onPart: (part: Buffer) => Promise<void>): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.absorb(chunk, onPart).then(() => callback(), callback);
      },
    });
  }

  private async absorb(chunk: Buffer, onPart: (part: Buffer) => Promise<void>): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const part = this.room();
      const copied = chunk.copy(part, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === this.partBytes) {
        this.part = undefined;
        this.filled = 0;
        if (this.remaining !== undefined)
          this.remaining = Math.max(0, this.remaining - part.length);
        await onPart(part);
      }
    }
  }

  /** The bytes collected since the last full part. */
  rest(): Buffer {
    return this.part === undefined ? Buffer.alloc(0) : this.part.subarray(0, this.filled);
  }
}
