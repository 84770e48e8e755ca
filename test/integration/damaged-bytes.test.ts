import { expect } from 'chai';
import { mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { blobOf, md5, sha256Base64 } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { expectAlive } from '../harness/hostile-clients.ts';
import { framedGet, problemOf } from '../harness/http.ts';
import { COLLIDING_MD5, COLLIDING_PAIR } from '../harness/md5-collision.ts';
import { metricSum } from '../harness/production-helpers.ts';

const KiB = 1024;

/** Flips one byte of a stored blob file, as a failing disk or a stray write would. */
async function damage(path: string, offset: number, keepMtime = false): Promise<void> {
  const before = await stat(path);
  const handle = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
  if (keepMtime) await utimes(path, before.atime, before.mtime);
}

/** Issue 9, items 2 and 3 on the embedded tier, against the real process. */
describe('damaged bytes and MD5 collisions on the embedded tier (real process)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let plane: SpawnedDataPlane;
  const blobPath = (key: string) => join(dataDir, 'blobs', key.slice(0, 2), key);
  const metaPath = (key: string) => `${blobPath(key)}.meta.json`;
  type Meta = { pieces?: { size: number; crc32: string; seal: number } };
  const readMetaFile = async (key: string): Promise<Meta> =>
    JSON.parse(await readFile(metaPath(key), 'utf8')) as Meta;
  /**
   * An upload records the piece checksums, and so does a whole GET that verified the file by
   * MD5 (after its end): wait for them.
   */
  const piecesRecorded = (key: string) =>
    eventually('the piece checksums recorded', async () => (await readMetaFile(key)).pieces);
  const blobUrl = (key: string) => `${plane.url}/v1/blobs/${key}`;
  const put = (body: Buffer, headers: Record<string, string> = {}, key = md5(body)) =>
    fetch(blobUrl(key), { method: 'PUT', body, headers });
  const quarantined = () => metricSum(plane.url, 'blobcache_quarantined_total', 'tier="durable"');
  const start = () =>
    spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      // Blobs over 64 KiB are served from disk, never from memory.
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '64Ki',
    });

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-damage-'));
    plane = await start();
  });
  afterEach(async () => {
    expect(plane.child.exitCode).to.equal(null);
    await expectAlive(plane.url);
  });
  after(async () => {
    await plane.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('item 2: a blob file damaged on disk', () => {
    /**
     * Damages the stored `blob` at `at` (past its first MiB, which is read, checked and sent
     * first), times kept, then reads it whole: the transfer is cut before the damaged 64 KiB
     * piece, what was sent is the blob's, and the copy is quarantined.
     */
    async function expectCutBeforeDamagedPiece(blob: Buffer, at: number): Promise<void> {
      const key = md5(blob);
      const before = await quarantined();
      await damage(blobPath(key), at, true);
      const read = await framedGet(blobUrl(key));
      expect(read.status).to.equal(200);
      expect(read.complete).to.be.false;
      expect(read.body.length).to.be.at.most(at - (at % (64 * KiB)));
      expect(read.body.equals(blob.subarray(0, read.body.length))).to.be.true;
      expect(await quarantined()).to.equal(before + 1);
      expect((await fetch(blobUrl(key))).status).to.equal(404);
    }

    it('is never served complete to a whole GET: the transfer is cut, the copy quarantined', async () => {
      const blob = blobOf(1536 * KiB, 101);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      const before = await quarantined();
      // Past the first MiB, which is read, checked and sent before the damage is found.
      await damage(blobPath(key), 1300 * KiB);
      const read = await framedGet(blobUrl(key));
      expect(read.status).to.equal(200);
      expect(read.declared).to.equal(blob.length);
      expect(read.complete).to.be.false;
      expect(read.body.length).to.be.below(blob.length);
      expect(await quarantined()).to.equal(before + 1);
      expect(plane.logs.some((line) => line.level === 'error' && line.key === key)).to.be.true;
      expect((await fetch(blobUrl(key))).status).to.equal(404);
      // The next upload of the right bytes stores it again.
      expect((await put(blob)).status).to.equal(201);
      const again = await framedGet(blobUrl(key));
      expect(again.complete).to.be.true;
      expect(again.body.equals(blob)).to.be.true;
    });

    it('is caught by a whole GET even when the damage kept the modification time', async () => {
      const blob = blobOf(200 * KiB, 102);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      await damage(blobPath(key), blob.length - 1, true);
      const read = await framedGet(blobUrl(key));
      // Found before the first byte went out (a 500), or the transfer is cut: never a whole 200.
      expect(read.status === 200 && read.complete).to.be.false;
      expect(read.body.includes(blob.subarray(blob.length - 64))).to.be.false;
      expect((await fetch(blobUrl(key), { method: 'HEAD' })).status).to.equal(404);
    });

    it('is caught piece by piece once a whole GET recorded its checksums, with the time kept', async () => {
      const blob = blobOf(1536 * KiB, 107);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      const first = await framedGet(blobUrl(key));
      expect(first.complete).to.be.true;
      expect(first.body.equals(blob)).to.be.true;
      const pieces = await piecesRecorded(key);
      expect(pieces.size).to.equal(blob.length);
      // Damage in the second MiB, its times put back: only the checksums can tell.
      await expectCutBeforeDamagedPiece(blob, 1024 * KiB + 200 * KiB);
    });

    it('checks the first whole GET after an upload piece by piece against the checksums the upload recorded', async () => {
      const blob = blobOf(1536 * KiB, 110);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      // Recorded by the upload from the bytes it verified, before any read.
      const { pieces } = await readMetaFile(key);
      expect(pieces?.size).to.equal(blob.length);
      const table = Buffer.from(pieces!.crc32, 'base64');
      expect(table.length).to.equal(4 * 24);
      for (let index = 0; index < 24; index++) {
        const piece = blob.subarray(index * 64 * KiB, (index + 1) * 64 * KiB);
        expect(table.readUInt32BE(4 * index), `piece ${index}`).to.equal(crc32(piece));
      }
      // Damaged before the first read, its times put back: only the checksums can tell.
      await expectCutBeforeDamagedPiece(blob, 1100 * KiB + 3);
    });

    it('verifies a blob stored without checksums (an older meta file) by MD5 on its first whole GET', async () => {
      const blob = blobOf(700 * KiB, 111);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      const { pieces: recorded, ...withoutPieces } = await readMetaFile(key);
      expect(recorded).to.not.equal(undefined);
      await writeFile(metaPath(key), JSON.stringify(withoutPieces));
      // Intact: served whole, and the MD5 pass records the checksums again.
      const first = await framedGet(blobUrl(key));
      expect(first.complete).to.be.true;
      expect(first.body.equals(blob)).to.be.true;
      expect(await piecesRecorded(key)).to.deep.equal(recorded);
      // Damaged in its last byte, times kept, with no checksums: the MD5 holds the end back.
      await writeFile(metaPath(key), JSON.stringify(withoutPieces));
      const before = await quarantined();
      await damage(blobPath(key), blob.length - 1, true);
      const read = await framedGet(blobUrl(key));
      expect(read.status).to.equal(200);
      expect(read.complete).to.be.false;
      expect(read.body.length).to.be.below(blob.length);
      expect(await quarantined()).to.equal(before + 1);
      expect((await fetch(blobUrl(key), { method: 'HEAD' })).status).to.equal(404);
    });

    it('answers 500, sending no byte, when the first piece is found damaged', async () => {
      const blob = blobOf(600 * KiB, 109);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      expect((await framedGet(blobUrl(key))).complete).to.be.true;
      await piecesRecorded(key);
      const before = await quarantined();
      await damage(blobPath(key), 10, true);
      const read = await framedGet(blobUrl(key));
      expect(read.status).to.equal(500);
      expect(read.body.includes(blob.subarray(0, 64))).to.be.false;
      expect(await quarantined()).to.equal(before + 1);
      expect((await fetch(blobUrl(key))).status).to.equal(404);
    });

    it('never removes an intact blob for damaged checksums in its meta file', async () => {
      const blob = blobOf(400 * KiB, 108);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      expect((await framedGet(blobUrl(key))).complete).to.be.true;
      const recorded = await piecesRecorded(key);
      const before = await quarantined();
      const table = Buffer.from(recorded.crc32, 'base64');
      table[1] = table[1]! ^ 0x01;
      // A table that no longer matches its seal reads as none: the blob is verified by MD5.
      const meta = await readMetaFile(key);
      meta.pieces = { ...recorded, crc32: table.toString('base64') };
      await writeFile(metaPath(key), JSON.stringify(meta));
      const read = await framedGet(blobUrl(key));
      expect(read.complete).to.be.true;
      expect(read.body.equals(blob)).to.be.true;
      const rightAgain = async () => {
        const { pieces } = await readMetaFile(key);
        return pieces?.crc32 === recorded.crc32 && pieces.seal === recorded.seal;
      };
      // That MD5 pass records the right table again (after the read ended): wait for it.
      await eventually('the right checksums recorded again', rightAgain);
      // A wrong table that matches its seal (written by hand) costs one failed read (its
      // first piece fails: a 500): the blob is hashed whole, found intact and kept, and its
      // checksums recorded again.
      meta.pieces = { ...recorded, crc32: table.toString('base64'), seal: crc32(table) };
      await writeFile(metaPath(key), JSON.stringify(meta));
      const failed = await framedGet(blobUrl(key));
      expect(failed.status).to.equal(500);
      await eventually('the right checksums recorded once more', rightAgain);
      const again = await framedGet(blobUrl(key));
      expect(again.complete).to.be.true;
      expect(again.body.equals(blob)).to.be.true;
      expect(await quarantined()).to.equal(before);
    });

    it('is never served to any Range read: every range answers 404 once found damaged', async () => {
      const blob = blobOf(500 * KiB, 103);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      const before = await quarantined();
      // Damage at the end; the ranges asked for lie elsewhere and still must not be served.
      await damage(blobPath(key), blob.length - 10);
      for (const range of ['bytes=0-99', 'bytes=1000-', 'bytes=-5']) {
        const response = await fetch(blobUrl(key), { headers: { Range: range } });
        expect(response.status, range).to.equal(404);
        await response.arrayBuffer();
      }
      expect(await quarantined()).to.equal(before + 1);
    });

    it('serves ranges of an intact blob, across a restart, without re-reading it all', async () => {
      const blob = blobOf(300 * KiB, 104);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      await plane.stop();
      plane = await start();
      const response = await fetch(blobUrl(key), { headers: { Range: 'bytes=100-199' } });
      expect(response.status).to.equal(206);
      expect(Buffer.from(await response.arrayBuffer()).equals(blob.subarray(100, 200))).to.be.true;
    });

    it('is repaired by a re-PUT of the right bytes (201, not "already stored")', async () => {
      const blob = blobOf(400 * KiB, 105);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      const before = await quarantined();
      await damage(blobPath(key), 12_345);
      const repaired = await put(blob);
      expect(repaired.status).to.equal(201);
      expect(await repaired.json()).to.include({ key, created: true });
      expect(await quarantined()).to.equal(before + 1);
      expect((await readFile(blobPath(key))).equals(blob)).to.be.true;
      const read = await framedGet(blobUrl(key));
      expect(read.complete).to.be.true;
      expect(read.body.equals(blob)).to.be.true;
    });

    it('is repaired by a re-PUT of a blob small enough for memory too', async () => {
      const blob = blobOf(10 * KiB, 106);
      const key = md5(blob);
      expect((await put(blob)).status).to.equal(201);
      await damage(blobPath(key), 5);
      expect((await put(blob)).status).to.equal(201);
      expect((await readFile(blobPath(key))).equals(blob)).to.be.true;
    });
  });

  describe('item 3: two contents with one MD5 (Wang and Yu’s colliding pair)', () => {
    const [first, second] = COLLIDING_PAIR;
    const digest = (block: Buffer) => ({ 'Repr-Digest': `sha-256=:${sha256Base64(block)}:` });

    afterEach(async () => {
      await fetch(blobUrl(COLLIDING_MD5), { method: 'DELETE' });
    });

    it('uses a real collision: two different blocks, one MD5', () => {
      expect(first.equals(second)).to.be.false;
      expect(md5(first)).to.equal(COLLIDING_MD5);
      expect(md5(second)).to.equal(COLLIDING_MD5);
    });

    it('keeps the first content; the other one with its Repr-Digest is a 409', async () => {
      expect((await put(first, digest(first))).status).to.equal(201);
      const clash = await put(second, digest(second));
      expect(clash.status).to.equal(409);
      expect((await problemOf(clash)).code).to.equal('digest-conflict');
      const read = await fetch(blobUrl(COLLIDING_MD5));
      expect(Buffer.from(await read.arrayBuffer()).equals(first)).to.be.true;
      expect(read.headers.get('repr-digest')).to.equal(digest(first)['Repr-Digest']);
    });

    it('compares against a first content stored without a digest, and remembers it', async () => {
      expect((await put(first)).status).to.equal(201);
      const clash = await put(second, digest(second));
      expect(clash.status).to.equal(409);
      // The stored content's own SHA-256 is known now, and survives a restart.
      await plane.stop();
      plane = await start();
      const read = await fetch(blobUrl(COLLIDING_MD5));
      expect(Buffer.from(await read.arrayBuffer()).equals(first)).to.be.true;
      expect(read.headers.get('repr-digest')).to.equal(digest(first)['Repr-Digest']);
    });

    it('never calls identical bytes a conflict, with or without a digest', async () => {
      expect((await put(first)).status).to.equal(201);
      const same = await put(first, digest(first));
      expect(same.status).to.equal(200);
      expect(await same.json()).to.include({ created: false, sha256: sha256Base64(first) });
      expect((await put(first)).status).to.equal(200);
      expect((await put(first, digest(first))).status).to.equal(200);
    });

    it('answers an upload without a digest by the key alone, and serves only the first', async () => {
      expect((await put(first, digest(first))).status).to.equal(201);
      const other = await put(second);
      expect(other.status).to.equal(200);
      expect(await other.json()).to.include({ created: false, sha256: sha256Base64(first) });
      for (let i = 0; i < 3; i++) {
        const read = await fetch(blobUrl(COLLIDING_MD5));
        expect(Buffer.from(await read.arrayBuffer()).equals(first)).to.be.true;
      }
      await plane.stop();
      plane = await start();
      const read = await fetch(blobUrl(COLLIDING_MD5));
      expect(Buffer.from(await read.arrayBuffer()).equals(first)).to.be.true;
      expect(read.headers.get('repr-digest')).to.equal(digest(first)['Repr-Digest']);
    });
  });
});
