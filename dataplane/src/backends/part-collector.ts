import { Writable } from 'node:stream';

/**
 * Gathers a stream into parts of exactly `partBytes` (the last one shorter), holding at
 * most one part in memory. Full parts are handed to `onPart` as they complete, with
 * backpressure: the stream waits while a part is being sent.
 */
export class PartCollector {
  private readonly partBytes: number;
  private part: Buffer;
  private filled = 0;

  constructor(partBytes: number) {
    this.partBytes = partBytes;
    this.part = Buffer.allocUnsafe(partBytes);
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
      const copied = chunk.copy(this.part, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === this.partBytes) {
        const full = this.part;
        this.part = Buffer.allocUnsafe(this.partBytes);
        this.filled = 0;
        await onPart(full);
      }
    }
  }

  /** The bytes collected since the last full part. */
  rest(): Buffer {
    return this.part.subarray(0, this.filled);
  }
}
