import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../harness/eventually.ts';
import { blobOf, md5 } from '../harness/blobs.ts';
import { startTestServer, type TestServer } from '../harness/dataplane.ts';
import { problemOf, rawRequest, uploadInTwoParts } from '../harness/http.ts';

async function storedFiles(server: TestServer): Promise<{ tmp: string[]; blobs: string[] }> {
  const blobs: string[] = [];
  for (const prefix of await readdir(join(server.dataDir, 'blobs'))) {
    const names = await readdir(join(server.dataDir, 'blobs', prefix));
    blobs.push(...names.filter((name) => !name.endsWith('.meta.json')));
  }
  return { tmp: await readdir(join(server.dataDir, 'tmp')), blobs };
}

describe('uploads that go wrong', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer({ maxBlobBytes: 1024 * 1024 });
  });
  afterEach(async () => {
    await server.stop();
  });

  it('refuses a declared Content-Length over the limit with 413 before reading the body', async () => {
    const blob = blobOf(1024 * 1024 + 1, 2);
    const response = await fetch(`${server.url}/v1/blobs/${md5(blob)}`, {
      method: 'PUT',
      body: blob,
    });
    expect(response.status).to.equal(413);
    expect((await problemOf(response)).code).to.equal('blob-too-large');
    expect(await storedFiles(server)).to.deep.equal({ tmp: [], blobs: [] });
  });

  it('refuses a chunked upload that grows past the limit with 413 and keeps nothing', async () => {
    const blob = blobOf(1024 * 1024 + 4096, 2);
    const pieces = Array.from({ length: 17 }, (_, i) => blob.subarray(i * 65536, (i + 1) * 65536));
    const response = await rawRequest(`${server.url}/v1/blobs/${md5(blob)}`, {
      method: 'PUT',
      body: Readable.from(pieces, { objectMode: false }),
    });
    expect(response.status).to.equal(413);
    expect(JSON.parse(response.body.toString())).to.include({ code: 'blob-too-large' });
    await eventually(
      'the temp file to go',
      async () => (await storedFiles(server)).tmp.length === 0,
      { timeoutMs: 5000, intervalMs: 20 },
    );
    expect((await storedFiles(server)).blobs).to.deep.equal([]);
  });

  it('rejects a body shorter than its Content-Length', async () => {
    const blob = blobOf(1000, 3);
    const outcome = await new Promise<number | Error>((resolve) => {
      const req = request(`${server.url}/v1/blobs/${md5(blob)}`, {
        method: 'PUT',
        headers: { 'Content-Length': '2000' },
      });
      req.on('response', (res) => resolve(res.statusCode ?? 0));
      req.on('error', resolve);
      req.write(blob, () => setTimeout(() => req.destroy(), 50));
    });
    expect(outcome).to.be.instanceOf(Error);
    await eventually(
      'the temp file to go',
      async () => (await storedFiles(server)).tmp.length === 0,
      { timeoutMs: 5000, intervalMs: 20 },
    );
    expect((await storedFiles(server)).blobs).to.deep.equal([]);
  });

  it('keeps nothing, not even a temp file, when the client aborts mid-upload', async () => {
    const blob = blobOf(512 * 1024, 4);
    const key = md5(blob);
    await new Promise<void>((resolve) => {
      const req = request(`${server.url}/v1/blobs/${key}`, {
        method: 'PUT',
        headers: { 'Content-Length': String(blob.length) },
      });
      req.on('error', () => resolve());
      req.write(blob.subarray(0, 200 * 1024));
      // Give the server time to create its temp file and write part of the body.
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    await eventually(
      'the temp file to go',
      async () => (await storedFiles(server)).tmp.length === 0,
      { timeoutMs: 5000, intervalMs: 20 },
    );
    expect((await storedFiles(server)).blobs).to.deep.equal([]);
    expect((await fetch(`${server.url}/v1/blobs/${key}`)).status).to.equal(404);
    // The server is still healthy and the same upload now succeeds.
    expect(
      (await fetch(`${server.url}/v1/blobs/${key}`, { method: 'PUT', body: blob })).status,
    ).to.equal(201);
  });

  it('stores one blob when the same key is uploaded concurrently, and all uploads succeed', async () => {
    const blob = blobOf(700 * 1024, 9);
    const key = md5(blob);
    const statuses = await Promise.all(
      Array.from({ length: 8 }, () =>
        rawRequest(`${server.url}/v1/blobs/${key}`, {
          method: 'PUT',
          // Chunked and slow enough that the uploads overlap rather than short-circuit.
          body: Readable.from(
            Array.from({ length: 11 }, (_, i) => blob.subarray(i * 65536, (i + 1) * 65536)),
            { objectMode: false },
          ),
        }).then((response) => response.status),
      ),
    );
    expect(
      statuses.every((status) => status === 200 || status === 201),
      String(statuses),
    ).to.be.true;
    expect(statuses.filter((status) => status === 201)).to.have.length(1);
    expect((await storedFiles(server)).blobs).to.deep.equal([key]);
    expect((await storedFiles(server)).tmp).to.deep.equal([]);
    const got = await fetch(`${server.url}/v1/blobs/${key}`);
    expect(Buffer.from(await got.arrayBuffer()).equals(blob)).to.be.true;
  });

  it('DELETE wins against an upload that is still streaming', async () => {
    const blob = blobOf(256 * 1024, 12);
    const key = md5(blob);
    const upload = uploadInTwoParts(`${server.url}/v1/blobs/${key}`, blob, 1000, async () => {
      await sleep(100);
      const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'DELETE' });
      expect(response.status).to.equal(204);
    });
    expect(await upload).to.be.oneOf([200, 201]);
    expect((await fetch(`${server.url}/v1/blobs/${key}`)).status).to.equal(404);
    expect(await server.cache.head(key)).to.equal(null);
    expect((await storedFiles(server)).blobs).to.deep.equal([]);
  });
});
