import { expect } from 'chai';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readMeta,
  stampMatches,
  stampOf,
  writeMeta,
} from '../../../dataplane/src/backends/blob-meta.ts';

describe('blob meta files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blobcache-meta-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a missing, empty or damaged meta file as nothing known', async () => {
    expect(await readMeta(join(dir, 'none.meta.json'))).to.deep.equal({});
    for (const text of ['', '{"sha256":', 'null', '42', '{"verified":{"size":1}}']) {
      await writeFile(join(dir, 'bad.meta.json'), text);
      expect(await readMeta(join(dir, 'bad.meta.json')), text).to.deep.equal({});
    }
  });

  it('writes atomically through the temp directory and leaves no temp file', async () => {
    const tmp = join(dir, 'tmp');
    await writeFile(join(dir, 'blob'), 'x');
    await mkdir(tmp);
    const stamp = stampOf(await stat(join(dir, 'blob'), { bigint: true }));
    await writeMeta(join(dir, 'blob.meta.json'), { sha256: 'abc', verified: stamp }, tmp);
    expect(await readMeta(join(dir, 'blob.meta.json'))).to.deep.equal({
      sha256: 'abc',
      verified: stamp,
    });
    expect(await readdir(tmp)).to.deep.equal([]);
  });

  it('matches a stamp only while size, inode and mtime are unchanged', async () => {
    const path = join(dir, 'blob');
    await writeFile(path, 'hello');
    const stamp = stampOf(await stat(path, { bigint: true }));
    expect(stampMatches(stamp, await stat(path, { bigint: true }))).to.be.true;
    expect(stampMatches(undefined, await stat(path, { bigint: true }))).to.be.false;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await writeFile(path, 'hellO');
    expect(stampMatches(stamp, await stat(path, { bigint: true }))).to.be.false;
  });
});
