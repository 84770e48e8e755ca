import { expect } from 'chai';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { FileSystemStore } from '../../../dataplane/src/backends/filesystem.ts';
import { DigestConflictError, DigestMismatchError } from '../../../dataplane/src/blob/errors.ts';
import {
  CHECKED_PIECE_BYTES as PIECE,
  PieceChecksummer,
} from '../../../dataplane/src/backends/piece-checksums.ts';
import { blobOf, md5, sha256Base64 } from '../../harness/blobs.ts';

describe('FileSystemStore', () => {
  let root: string;
  let store: FileSystemStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'blobcache-fs-'));
    store = await FileSystemStore.open(root);
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  const source = (value: string) => Readable.from([Buffer.from(value)], { objectMode: false });

  it('publishes under blobs/<md5[0:2]>/<md5> and names an unkeyed blob by its MD5', async () => {
    const result = await store.put(source('hello'), {});
    expect(result).to.deep.equal({ info: { key: md5('hello'), size: 5 }, created: true });
    expect(await readdir(join(root, 'blobs', md5('hello').slice(0, 2)))).to.have.members([
      md5('hello'),
      `${md5('hello')}.meta.json`,
    ]);
    expect(await text((await store.get(md5('hello')))!.stream)).to.equal('hello');
    expect(await text((await store.get(md5('hello'), { start: 1, end: 3 }))!.stream)).to.equal(
      'ell',
    );
  });

  it('returns null for a miss', async () => {
    expect(await store.head(md5('none'))).to.equal(null);
    expect(await store.get(md5('none'))).to.equal(null);
    expect(await store.delete(md5('none'))).to.be.false;
  });

  it('leaves nothing behind when the bytes do not match', async () => {
    const error = await store.put(source('hello'), { key: md5('other') }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(DigestMismatchError);
    expect(await readdir(join(root, 'tmp'))).to.deep.equal([]);
    expect(await readdir(join(root, 'blobs'))).to.deep.equal([]);
  });

  it('leaves nothing behind when the source fails midway', async () => {
    const failing = new PassThrough();
    const put = store.put(failing, { key: md5('hello world') });
    failing.write('hello');
    await new Promise((resolve) => setTimeout(resolve, 20));
    failing.destroy(new Error('client went away'));
    const error = await put.then(
      () => expect.fail('the put succeeded'),
      (e: unknown) => e as Error,
    );
    expect(error.message).to.contain('client went away');
    expect(await readdir(join(root, 'tmp'))).to.deep.equal([]);
  });

  it('reports the second of two identical uploads as not created', async () => {
    const results = await Promise.all([
      store.put(source('same'), {}),
      store.put(source('same'), {}),
    ]);
    expect(results.map((r) => r.created).sort()).to.deep.equal([false, true]);
  });

  it('keeps the verified SHA-256 and refuses a different one for the same MD5', async () => {
    const sha256 = sha256Base64('abc');
    await store.put(source('abc'), { sha256 });
    expect(await store.head(md5('abc'))).to.deep.equal({ key: md5('abc'), size: 3, sha256 });
    // Simulate a colliding earlier blob by recording a different SHA-256 for the same MD5
    // (keeping the stamp that says the file was verified).
    const metaPath = join(root, 'blobs', md5('abc').slice(0, 2), `${md5('abc')}.meta.json`);
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
    await writeFile(metaPath, JSON.stringify({ ...meta, sha256: 'AAAA' }));
    const error = await store.put(source('abc'), { sha256 }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(DigestConflictError);
  });

  it('makes a prefix directory again when it was removed under the running store', async () => {
    await store.put(source('hello'), {});
    // Removed by hand while the store runs: the store knew the directory and kept its handle.
    await rm(join(root, 'blobs', md5('hello').slice(0, 2)), { recursive: true });
    expect(await store.head(md5('hello'))).to.equal(null);
    const again = await store.put(source('hello'), {});
    expect(again.created).to.be.true;
    expect(await text((await store.get(md5('hello')))!.stream)).to.equal('hello');
    expect(await readdir(join(root, 'tmp'))).to.deep.equal([]);
  });

  it("writes a new blob's meta file in place and leaves no temp file of it", async () => {
    const sha256 = sha256Base64('meta');
    await store.put(source('meta'), { sha256 });
    const metaPath = join(root, 'blobs', md5('meta').slice(0, 2), `${md5('meta')}.meta.json`);
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as {
      sha256?: string;
      verified?: unknown;
    };
    expect(meta.sha256).to.equal(sha256);
    expect(meta.verified).to.have.keys('size', 'ino', 'mtimeNs');
    expect(await readdir(join(root, 'tmp'))).to.deep.equal([]);
  });

  it('records the checksums of the verified upload, so its first whole read passes on no damaged piece', async () => {
    const blob = blobOf(5 * PIECE + 100, 7);
    const key = md5(blob);
    await store.put(Readable.from([blob.subarray(0, 1000), blob.subarray(1000)]), { key });
    const blobPath = join(root, 'blobs', key.slice(0, 2), key);
    const meta = JSON.parse(await readFile(`${blobPath}.meta.json`, 'utf8')) as {
      pieces?: unknown;
    };
    const summer = new PieceChecksummer();
    summer.update(blob);
    expect(meta.pieces).to.deep.equal(summer.result());
    // Damage in the fourth piece, then the first read since the upload.
    const damaged = Buffer.from(blob);
    damaged[3 * PIECE + 5] = damaged[3 * PIECE + 5]! ^ 0x01;
    await writeFile(blobPath, damaged);
    const read = await store.get(key);
    const received: Buffer[] = [];
    const error = await (async () => {
      for await (const chunk of read!.stream) received.push(chunk as Buffer);
    })().catch((e: unknown) => e as Error);
    expect(error).to.be.instanceOf(Error);
    expect((error as Error).message).to.contain('piece 3');
    expect(Buffer.concat(received).equals(blob.subarray(0, 3 * PIECE))).to.be.true;
    // Confirmed damaged by MD5 and removed.
    expect(await store.head(key)).to.equal(null);
  });

  it('reads a first meta file cut short by a crash as nothing known: a range is served only after the whole blob is verified', async () => {
    const sha256 = sha256Base64('crash at the meta file');
    const key = md5('crash at the meta file');
    await store.put(source('crash at the meta file'), { sha256 });
    const blobPath = join(root, 'blobs', key.slice(0, 2), key);
    const metaPath = `${blobPath}.meta.json`;
    const written = await readFile(metaPath, 'utf8');
    // Every cut of the unsynced meta file a crash could leave.
    for (const cut of [0, 1, Math.floor(written.length / 2), written.length - 1]) {
      await writeFile(metaPath, written.slice(0, cut));
      expect(await store.headIntact(key), `cut at ${cut}`).to.equal(null);
      const range = await store.get(key, { start: 0, end: 4 });
      expect(await text(range!.stream)).to.equal('crash');
    }
    // The same cut beside damaged bytes: the range is refused and the copy removed.
    await writeFile(metaPath, written.slice(0, 5));
    await writeFile(blobPath, 'crash at the meta fil_');
    expect(await store.get(key, { start: 0, end: 4 })).to.equal(null);
    expect(await store.head(key)).to.equal(null);
  });

  it('replaces a meta file left without its blob by a crash before the link', async () => {
    const key = md5('orphan');
    await mkdir(join(root, 'blobs', key.slice(0, 2)), { recursive: true });
    const metaPath = join(root, 'blobs', key.slice(0, 2), `${key}.meta.json`);
    await writeFile(
      metaPath,
      JSON.stringify({ sha256: 'AAAA', verified: { size: 1, ino: '1', mtimeNs: '1' } }),
    );
    const sha256 = sha256Base64('orphan');
    expect((await store.put(source('orphan'), { sha256 })).created).to.be.true;
    expect(await store.headIntact(key)).to.deep.equal({ key, size: 6, sha256 });
  });

  it('removes temp files left by a crash when opened', async () => {
    await mkdir(join(root, 'tmp'), { recursive: true });
    await writeFile(join(root, 'tmp', 'leftover'), 'partial');
    await (await FileSystemStore.open(root)).close();
    expect(await readdir(join(root, 'tmp'))).to.deep.equal([]);
  });

  it('lists stored blobs', async () => {
    await store.put(source('one'), {});
    await store.put(source('two'), { sha256: sha256Base64('two') });
    const listed = [];
    for await (const info of store.list()) listed.push(info.key);
    expect(listed.sort()).to.deep.equal([md5('one'), md5('two')].sort());
  });
});
