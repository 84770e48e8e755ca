import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GeneratedBlob, blobOf, digestOf, md5 } from '../harness/blobs.ts';
import { residentSet, spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { uploadGenerated, uploadInTwoParts } from '../harness/http.ts';

const MiB = 1024 * 1024;

describe('the data plane as a process (npm start)', () => {
  let dataDir: string;
  let plane: SpawnedDataPlane | undefined;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-process-'));
  });
  afterEach(async () => {
    await plane?.stop('SIGKILL');
    plane = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('exits with a message naming the bad setting', async () => {
    const failing = spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_MAX_BLOB_BYTES: 'lots',
    });
    const error = await failing.then(
      () => null,
      (failure: unknown) => failure as Error,
    );
    expect(error?.message).to.contain('BLOBCACHE_MAX_BLOB_BYTES').and.contain('exited with 1');
  });

  it('keeps blobs across a restart (the directory is the durable tier)', async () => {
    const blob = blobOf(100_000, 21);
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    expect(
      (await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob })).status,
    ).to.equal(201);
    expect(await plane.stop()).to.equal(0);
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    const got = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`);
    expect(got.headers.get('x-cache')).to.equal('miss');
    expect(Buffer.from(await got.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('finishes an in-flight upload on SIGTERM, then exits 0', async () => {
    const blob = blobOf(2 * MiB, 22);
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    const url = plane.url;
    const running = plane;
    const status = await uploadInTwoParts(`${url}/v1/blobs/${md5(blob)}`, blob, MiB, async () => {
      running.child.kill('SIGTERM');
      await sleep(300);
    });
    expect(status).to.equal(201);
    expect(await plane.exited).to.equal(0);
    expect(plane.logs.map((entry) => entry.message)).to.include.members([
      'Draining before shutdown',
      'Stopped the data plane',
    ]);
    // The blob it acknowledged while draining is on disk for the next start.
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir });
    expect((await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'HEAD' })).status).to.equal(
      200,
    );
  });

  it('moves a 1 GiB blob up and down with the server RSS under 200 MiB', async function () {
    this.timeout(300_000);
    const blob = new GeneratedBlob(1024 * MiB, 23);
    const key = blob.key();
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir, BLOBCACHE_MAX_BLOB_BYTES: '2Gi' });
    const pid = plane.child.pid!;
    const url = `${plane.url}/v1/blobs/${key}`;

    const uploaded = await uploadGenerated(url, blob);
    expect(uploaded).to.equal(201);
    const afterUpload = await residentSet(pid);

    const response = await fetch(url);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-length')).to.equal(String(blob.size));
    expect(await digestOf(response.body!)).to.deep.equal({ md5: key, size: blob.size });
    const afterDownload = await residentSet(pid);
    const peakMiB = afterDownload.peakBytes / MiB;
    console.log(
      `      1 GiB round trip: server peak RSS ${peakMiB.toFixed(1)} MiB ` +
        `(after upload ${(afterUpload.currentBytes / MiB).toFixed(1)} MiB, after download ${(afterDownload.currentBytes / MiB).toFixed(1)} MiB)`,
    );
    expect(peakMiB).to.be.below(200);
  });
});
