import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobOf, md5 } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { framedGet } from '../harness/http.ts';

const MiB = 1024 * 1024;

/**
 * Reads `url`, pausing `pauseMs` after every `everyBytes` received (a slow client), or
 * leaving after `leaveAfter` bytes; resolves with what it received.
 */
function slowGet(
  url: string,
  options: { pauseMs: number; everyBytes: number; leaveAfter?: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let sincePause = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        sincePause += chunk.length;
        if (options.leaveAfter !== undefined && received >= options.leaveAfter) {
          req.destroy();
          resolve(Buffer.concat(chunks));
          return;
        }
        if (sincePause >= options.everyBytes) {
          sincePause = 0;
          res.pause();
          setTimeout(() => res.resume(), options.pauseMs);
        }
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', () => resolve(Buffer.concat(chunks)));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Large whole reads on the embedded tier are written from buffers the process reuses once
 * the socket wrote them (docs/decisions/0056): many concurrent readers of different blobs,
 * fast, slow and leaving midway, must each get exactly their blob's bytes.
 */
describe('large reads from reused buffers (embedded, real process)', function () {
  this.timeout(180_000);
  let dataDir: string;
  let plane: SpawnedDataPlane;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-large-reads-'));
    // Blobs over 64 KiB are read from disk, never from memory.
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '64Ki',
    });
  });
  after(async () => {
    await plane.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('gives every reader its own blob intact, with 24 fast, slow and departing readers of 4 blobs at once', async () => {
    const blobs = [0, 1, 2, 3].map((seed) => blobOf(3 * MiB + 12_345 * seed, 300 + seed));
    const url = (blob: Buffer) => `${plane.url}/v1/blobs/${md5(blob)}`;
    for (const blob of blobs) {
      const response = await fetch(url(blob), { method: 'PUT', body: blob });
      expect(response.status).to.equal(201);
    }
    // The first whole reads verify by MD5 and record the piece checksums; then read again.
    for (let round = 0; round < 2; round++) {
      const reads = blobs.flatMap((blob) => [
        framedGet(url(blob)).then((read) => ({ blob, body: read.body, whole: read.complete })),
        framedGet(url(blob)).then((read) => ({ blob, body: read.body, whole: read.complete })),
        slowGet(url(blob), { pauseMs: 30, everyBytes: 256 * 1024 }).then((body) => ({
          blob,
          body,
          whole: true,
        })),
        slowGet(url(blob), { pauseMs: 10, everyBytes: MiB }).then((body) => ({
          blob,
          body,
          whole: true,
        })),
        slowGet(url(blob), { pauseMs: 0, everyBytes: MiB, leaveAfter: MiB + 1 }).then((body) => ({
          blob,
          body,
          whole: false,
        })),
        slowGet(url(blob), { pauseMs: 50, everyBytes: 64 * 1024, leaveAfter: 300_000 }).then(
          (body) => ({ blob, body, whole: false }),
        ),
      ]);
      for (const { blob, body, whole } of await Promise.all(reads)) {
        if (whole) expect(body.equals(blob), `round ${round}: a whole body`).to.be.true;
        else
          expect(body.equals(blob.subarray(0, body.length)), `round ${round}: a prefix`).to.be.true;
      }
    }
    // Readers that left gave their buffers back: the next reads are whole and right.
    for (const blob of blobs) {
      const read = await framedGet(url(blob));
      expect(read.complete).to.be.true;
      expect(read.body.equals(blob)).to.be.true;
    }
  });
});
