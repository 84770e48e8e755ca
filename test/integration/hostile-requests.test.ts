import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blobOf, md5 } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import {
  KILLER_UPLOADS,
  expectAlive,
  pythonPut,
  resetAfterHeaders,
  runKillerUploads,
  shortUpload,
} from '../harness/hostile-clients.ts';
import { problemOf } from '../harness/http.ts';
import { metricSum } from '../harness/production-helpers.ts';
import { parseResponses, rawExchange } from '../harness/raw-socket.ts';

const MiB = 1024 * 1024;

/** Issue 9, items 1, 6 and 8, against the real process (`npm start`) on the embedded tier. */
describe('hostile requests against the data plane process (embedded)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let plane: SpawnedDataPlane;
  const stored = blobOf(200_000, 91);
  const storedKey = md5(stored);

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-hostile-'));
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_MAX_BLOB_BYTES: '1Mi',
    });
    const put = await fetch(`${plane.url}/v1/blobs/${storedKey}`, { method: 'PUT', body: stored });
    expect(put.status).to.equal(201);
  });
  afterEach(async () => {
    // After every case the same process is still up and answering.
    expect(plane.child.exitCode).to.equal(null);
    await expectAlive(plane.url);
  });
  after(async () => {
    await plane.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('item 1: no request kills the process', () => {
    for (const [name, build] of Object.entries(KILLER_UPLOADS)) {
      it(`answers ${name} with a 400 problem (new and stored keys)`, async () => {
        for (const key of ['b'.repeat(32), storedKey]) {
          const [answer] = parseResponses((await rawExchange(plane.url, build(key))).text);
          expect(answer?.status, key).to.equal(400);
          expect(answer?.headers['content-type']).to.equal('application/problem+json');
          expect(JSON.parse(answer!.body)).to.include({ status: 400, code: 'bad-request' });
        }
      });
    }

    it('survives clients that reset right after their headers (new and stored keys)', async () => {
      const before = await metricSum(plane.url, 'blobcache_client_errors_total');
      for (let i = 0; i < 5; i++) {
        await resetAfterHeaders(plane.url, storedKey, 500_000);
        await resetAfterHeaders(plane.url, 'c'.repeat(32), 500_000);
      }
      await expectAlive(plane.url);
      expect(await metricSum(plane.url, 'blobcache_client_errors_total')).to.be.above(before);
    });

    it('survives a body shorter than its Content-Length for a key already stored', async () => {
      for (let i = 0; i < 5; i++) {
        const status = await shortUpload(`${plane.url}/v1/blobs/${storedKey}`, stored, 400_000);
        expect(status).to.be.oneOf([0, 200]);
      }
      await expectAlive(plane.url);
      const got = await fetch(`${plane.url}/v1/blobs/${storedKey}`);
      expect(Buffer.from(await got.arrayBuffer()).equals(stored)).to.be.true;
    });

    it('survives all of them in a row, many times over', async () => {
      for (let round = 0; round < 3; round++) await runKillerUploads(plane.url, storedKey);
    });
  });

  describe('item 6: early answers reach a client that writes its whole body first', () => {
    it('delivers 413 for a declared body over the limit to Python http.client (5 of 5)', async () => {
      for (let i = 0; i < 5; i++) {
        const answer = await pythonPut(`${plane.url}/v1/blobs/${'d'.repeat(32)}`, 4 * MiB);
        expect(answer.status).to.equal(413);
        expect(answer.contentType).to.equal('application/problem+json; charset=utf-8');
        expect(JSON.parse(answer.body)).to.include({ code: 'blob-too-large' });
      }
    });

    it('delivers 400 for a bad header before the body to Python http.client', async () => {
      const answer = await pythonPut(`${plane.url}/v1/blobs/${'e'.repeat(32)}`, 900_000, {
        'Repr-Digest': 'sha-256=:nope:',
      });
      expect(answer.status).to.equal(400);
      expect(JSON.parse(answer.body)).to.include({ code: 'invalid-header' });
    });

    it('delivers 412 for If-None-Match: * on a stored key to Python http.client', async () => {
      const answer = await pythonPut(`${plane.url}/v1/blobs/${storedKey}`, 900_000, {
        'If-None-Match': '*',
      });
      expect(answer.status).to.equal(412);
      expect(JSON.parse(answer.body)).to.include({ code: 'precondition-failed' });
    });
  });

  describe("item 8: errors from Node's HTTP parser are problem+json", () => {
    const cases: [string, string, number, string][] = [
      ['a bad request line', 'GARBAGE\r\n\r\n', 400, 'bad-request'],
      [
        'a bad Content-Length',
        'PUT /v1/blobs/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc',
        400,
        'bad-request',
      ],
      [
        'Content-Length with Transfer-Encoding',
        'PUT /v1/blobs/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
        400,
        'bad-request',
      ],
      [
        'a bad chunk size',
        'PUT /v1/blobs/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
        400,
        'bad-request',
      ],
      ['a missing Host', 'GET /healthz HTTP/1.1\r\n\r\n', 400, 'bad-request'],
      [
        'headers over the limit',
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        431,
        'headers-too-large',
      ],
      [
        'an unsupported Expect',
        'PUT /v1/blobs/x HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 3\r\n\r\nabc',
        417,
        'expectation-failed',
      ],
      [
        'CONNECT',
        'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
        405,
        'method-not-allowed',
      ],
    ];
    for (const [name, bytes, status, code] of cases) {
      it(`answers ${name} with ${status} ${code}`, async () => {
        const exchange = await rawExchange(plane.url, bytes);
        expect(exchange.ending).to.equal('closed');
        const [answer] = parseResponses(exchange.text);
        expect(answer?.status).to.equal(status);
        expect(answer?.headers['content-type']).to.match(/^application\/problem\+json/);
        expect(JSON.parse(answer!.body)).to.include({ status, code });
      });
    }
  });

  describe('item 8: other bad answers', () => {
    const url = (path: string) => `${plane.url}${path}`;

    it('answers a path that does not decode (%zz) with 400', async () => {
      const response = await fetch(url('/v1/blobs/%zz'));
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('invalid-key');
    });

    it('answers deeply nested JSON to /missing with 400', async () => {
      const response = await fetch(url('/v1/blobs/missing'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      });
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('invalid-body');
    });

    for (const encoding of ['gzip', 'deflate', 'br']) {
      it(`answers an invalid ${encoding} body to /missing with 400`, async () => {
        const response = await fetch(url('/v1/blobs/missing'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Content-Encoding': encoding },
          body: 'not compressed at all',
        });
        expect(response.status).to.equal(400);
        expect((await problemOf(response)).code).to.equal('invalid-body');
      });
    }

    it('answers a /missing body over its limit with 413', async () => {
      const keys = Array.from({ length: 70_000 }, () => 'f'.repeat(32));
      const response = await fetch(url('/v1/blobs/missing'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(keys),
      });
      expect(response.status).to.equal(413);
      expect((await problemOf(response)).code).to.equal('body-too-large');
    });

    it('answers pipelined PUT then GET in order, the GET seeing the PUT', async () => {
      const blob = blobOf(300_000, 92);
      const key = md5(blob);
      const bytes = Buffer.concat([
        Buffer.from(
          `PUT /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\nContent-Length: ${blob.length}\r\n\r\n`,
        ),
        blob,
        Buffer.from(`GET /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      ]);
      const exchange = await rawExchange(plane.url, bytes);
      const [put, get] = parseResponses(exchange.text);
      expect(put?.status).to.equal(201);
      expect(get?.status).to.equal(200);
      expect(Buffer.from(get!.body, 'latin1').equals(blob)).to.be.true;
    });

    it('answers pipelined GET hits, a DELETE and a GET in order: the GET after the DELETE is a 404', async () => {
      const blob = blobOf(4096, 94);
      const key = md5(blob);
      expect((await fetch(url(`/v1/blobs/${key}`), { method: 'PUT', body: blob })).status).to.equal(
        201,
      );
      // The first GETs are in-memory hits (the fast path); the DELETE goes through express.
      const get = `GET /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\n\r\n`;
      const bytes = Buffer.from(
        get.repeat(3) +
          `DELETE /v1/blobs/${key} HTTP/1.1\r\nHost: x\r\n\r\n` +
          get.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
      );
      const answers = parseResponses((await rawExchange(plane.url, bytes)).text);
      expect(answers.map((answer) => answer.status)).to.deep.equal([200, 200, 200, 204, 404]);
      for (const answer of answers.slice(0, 3)) {
        expect(answer.headers['x-cache']).to.equal('hit');
        expect(Buffer.from(answer.body, 'latin1').equals(blob)).to.be.true;
      }
    });

    it('answers a client that half-closes after a complete upload', async () => {
      const blob = blobOf(100_000, 93);
      const bytes = Buffer.concat([
        Buffer.from(
          `PUT /v1/blobs/${md5(blob)} HTTP/1.1\r\nHost: x\r\nContent-Length: ${blob.length}\r\n\r\n`,
        ),
        blob,
      ]);
      const exchange = await rawExchange(plane.url, bytes, { after: 'end' });
      const [answer] = parseResponses(exchange.text);
      expect(answer?.status).to.equal(201);
      expect((await fetch(url(`/v1/blobs/${md5(blob)}`), { method: 'HEAD' })).status).to.equal(200);
    });

    it('answers other methods on the ops routes with 405 and Allow', async () => {
      for (const path of ['/healthz', '/readyz', '/metrics']) {
        for (const method of ['POST', 'PUT', 'DELETE']) {
          const response = await fetch(url(path), { method });
          expect(response.status, `${method} ${path}`).to.equal(405);
          expect(response.headers.get('allow')).to.equal('GET, HEAD');
          expect((await problemOf(response)).code).to.equal('method-not-allowed');
        }
      }
    });

    it('compares the Range unit case-insensitively', async () => {
      const response = await fetch(url(`/v1/blobs/${storedKey}`), {
        headers: { Range: 'BYTES=10-19' },
      });
      expect(response.status).to.equal(206);
      expect(Buffer.from(await response.arrayBuffer()).equals(stored.subarray(10, 20))).to.be.true;
    });

    it('honours If-None-Match: * on PUT: 412 when stored, 201 when not', async () => {
      const stale = await fetch(url(`/v1/blobs/${storedKey}`), {
        method: 'PUT',
        headers: { 'If-None-Match': '*' },
        body: stored,
      });
      expect(stale.status).to.equal(412);
      expect((await problemOf(stale)).code).to.equal('precondition-failed');
      const blob = blobOf(5000, 94);
      const fresh = await fetch(url(`/v1/blobs/${md5(blob)}`), {
        method: 'PUT',
        headers: { 'If-None-Match': '*' },
        body: blob,
      });
      expect(fresh.status).to.equal(201);
    });
  });
});

describe('Cache-Control of blobs behind a read token (real process)', function () {
  this.timeout(30_000);
  let dataDir: string;
  let plane: SpawnedDataPlane | undefined;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-cachecontrol-'));
  });
  afterEach(async () => {
    await plane?.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('is private when reads need a token, on the fast path, the stream path and HEAD', async () => {
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_READ_TOKEN: 'r',
      BLOBCACHE_WRITE_TOKEN: 'w',
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '64Ki',
    });
    const small = blobOf(1000, 95);
    const large = blobOf(100_000, 96);
    for (const blob of [small, large]) {
      const put = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, {
        method: 'PUT',
        headers: { Authorization: 'Bearer w' },
        body: blob,
      });
      expect(put.headers.get('cache-control')).to.match(/^private/);
      for (const method of ['GET', 'HEAD']) {
        const read = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, {
          method,
          headers: { Authorization: 'Bearer r' },
        });
        expect(read.status).to.equal(200);
        expect(read.headers.get('cache-control')).to.equal('private, max-age=31536000, immutable');
      }
    }
  });

  it('is public when reads are open', async () => {
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir, BLOBCACHE_WRITE_TOKEN: 'w' });
    const blob = blobOf(1000, 97);
    await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, {
      method: 'PUT',
      headers: { Authorization: 'Bearer w' },
      body: blob,
    });
    const read = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`);
    expect(read.headers.get('cache-control')).to.equal('public, max-age=31536000, immutable');
  });
});
