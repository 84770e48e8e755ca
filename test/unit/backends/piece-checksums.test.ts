import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import {
  CHECKED_PIECE_BYTES,
  PieceChecksummer,
  pieceMatches,
  pieceTable,
} from '../../../dataplane/src/backends/piece-checksums.ts';

const PIECE = CHECKED_PIECE_BYTES;

function checksumsOf(bytes: Buffer, feed: number): ReturnType<PieceChecksummer['result']> {
  const summer = new PieceChecksummer();
  for (let offset = 0; offset < bytes.length; offset += feed)
    summer.update(bytes.subarray(offset, offset + feed));
  return summer.result();
}

describe('piece checksums (CRC-32 of each 64 KiB piece)', () => {
  const bytes = randomBytes(3 * PIECE + 1234);

  it('records the CRC-32 of each piece, whatever sizes the bytes came in', () => {
    const whole = checksumsOf(bytes, bytes.length);
    for (const feed of [1000, PIECE, PIECE + 1, 7 * 1024])
      expect(checksumsOf(bytes, feed), `fed ${feed} at a time`).to.deep.equal(whole);
    const table = pieceTable(whole, bytes.length)!;
    expect(table.length).to.equal(4);
    for (let index = 0; index < 4; index++) {
      const piece = bytes.subarray(index * PIECE, (index + 1) * PIECE);
      expect(table[index]).to.equal(crc32(piece));
      expect(pieceMatches(table, index, piece)).to.be.true;
    }
  });

  it('finds a piece with one flipped bit', () => {
    const table = pieceTable(checksumsOf(bytes, PIECE), bytes.length)!;
    const damaged = Buffer.from(bytes.subarray(2 * PIECE, 3 * PIECE));
    damaged[100] = damaged[100]! ^ 0x10;
    expect(pieceMatches(table, 2, damaged)).to.be.false;
  });

  it('applies to no other size, and reads a table that fails its seal as none', () => {
    const checksums = checksumsOf(bytes, PIECE);
    expect(pieceTable(checksums, bytes.length - 1)).to.equal(null);
    expect(pieceTable(checksums, bytes.length + PIECE)).to.equal(null);
    const table = Buffer.from(checksums.crc32, 'base64');
    table[0] = table[0]! ^ 0x01;
    expect(pieceTable({ ...checksums, crc32: table.toString('base64') }, bytes.length)).to.equal(
      null,
    );
    expect(pieceTable({ ...checksums, crc32: 'short' }, bytes.length)).to.equal(null);
  });

  it('describes an empty blob with an empty table', () => {
    const checksums = new PieceChecksummer().result();
    expect(checksums.size).to.equal(0);
    expect(pieceTable(checksums, 0)).to.have.length(0);
  });
});
