import { expect } from 'chai';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { blobOf, contentMd5, md5, sha256Base64 } from '../harness/blobs.ts';
import { startTestServer, type TestServer } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { problemOf } from '../harness/http.ts';

describe('blob API on the embedded default (real HTTP on loopback)', () => {
  let server: TestServer;
  const blob = blobOf(300_000, 3);
  const key = md5(blob);

  beforeEach(async () => {
    server = await startTestServer();
  });
  afterEach(async () => {
    await server.stop();
  });

  const put = (body: Buffer, k = md5(body), headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/blobs/${k}`, { method: 'PUT', body, headers });

  describe('PUT and POST /v1/blobs/{md5}', () => {
    it('stores a new blob with 201 and answers 200 when it is already stored', async () => {
      const first = await put(blob);
      expect(first.status).to.equal(201);
      expect(first.headers.get('location')).to.equal(`/v1/blobs/${key}`);
      expect(first.headers.get('etag')).to.equal(`"${key}"`);
      expect(await first.json()).to.deep.equal({ key, size: blob.length, created: true });
      const second = await put(blob);
      expect(second.status).to.equal(200);
      expect(await second.json()).to.include({ key, created: false });
    });

    it('accepts POST to the keyed path like PUT', async () => {
      const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'POST', body: blob });
      expect(response.status).to.equal(201);
      expect((await fetch(`${server.url}/v1/blobs/${key}`)).status).to.equal(200);
    });

    it('stores an empty blob', async () => {
      const empty = Buffer.alloc(0);
      expect((await put(empty)).status).to.equal(201);
      const got = await fetch(`${server.url}/v1/blobs/${md5(empty)}`);
      expect(got.status).to.equal(200);
      expect((await got.arrayBuffer()).byteLength).to.equal(0);
    });

    it('rejects a key that is not a lowercase hex MD5 with 400', async () => {
      for (const bad of ['abc', key.toUpperCase(), `${key}0`, 'g'.repeat(32)]) {
        const response = await put(blob, bad);
        expect(response.status, bad).to.equal(400);
        expect((await problemOf(response)).code).to.equal('invalid-key');
      }
    });

    it('rejects content that does not hash to the key with 400 and stores nothing', async () => {
      const wrongKey = md5('something else');
      const response = await put(blob, wrongKey);
      expect(response.status).to.equal(400);
      const problem = await problemOf(response);
      expect(problem.code).to.equal('digest-mismatch');
      expect(problem.detail).to.contain(key).and.contain(wrongKey);
      expect((await fetch(`${server.url}/v1/blobs/${wrongKey}`)).status).to.equal(404);
      expect((await fetch(`${server.url}/v1/blobs/${key}`)).status).to.equal(404);
      expect(await readdir(join(server.dataDir, 'tmp'))).to.deep.equal([]);
    });

    it('honours Content-MD5: a header that differs from the key is 400 before any byte is read', async () => {
      const response = await put(blob, key, { 'Content-MD5': contentMd5('other') });
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('content-md5-mismatch');
      expect((await put(blob, key, { 'Content-MD5': contentMd5(blob) })).status).to.equal(201);
    });

    it('rejects a malformed Content-MD5 with 400', async () => {
      const response = await put(blob, key, { 'Content-MD5': 'not base64!' });
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('invalid-header');
    });

    it('verifies Repr-Digest sha-256, stores it and returns it on GET and HEAD', async () => {
      const digest = `sha-256=:${sha256Base64(blob)}:`;
      const wrong = await put(blob, key, { 'Repr-Digest': `sha-256=:${sha256Base64('x')}:` });
      expect(wrong.status).to.equal(400);
      expect((await problemOf(wrong)).code).to.equal('digest-mismatch');
      expect((await put(blob, key, { 'Repr-Digest': digest })).status).to.equal(201);
      const got = await fetch(`${server.url}/v1/blobs/${key}`);
      expect(got.headers.get('repr-digest')).to.equal(digest);
      const head = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'HEAD' });
      expect(head.headers.get('repr-digest')).to.equal(digest);
    });

    it('adds a Repr-Digest to a blob first stored without one', async () => {
      expect((await put(blob)).status).to.equal(201);
      const digest = `sha-256=:${sha256Base64(blob)}:`;
      expect((await put(blob, key, { 'Repr-Digest': digest })).status).to.equal(200);
      await server.cache.delete(key);
      const got = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'HEAD' });
      expect(got.headers.get('repr-digest')).to.equal(digest);
    });

    it('rejects a malformed Repr-Digest with 400', async () => {
      const response = await put(blob, key, { 'Repr-Digest': 'sha-256=abc' });
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('invalid-header');
    });
  });

  describe('POST /v1/blobs (server computes the key)', () => {
    it('answers 201 with the Location of the computed key', async () => {
      const response = await fetch(`${server.url}/v1/blobs`, { method: 'POST', body: blob });
      expect(response.status).to.equal(201);
      expect(response.headers.get('location')).to.equal(`/v1/blobs/${key}`);
      expect(await response.json()).to.include({ key, size: blob.length });
      const again = await fetch(`${server.url}/v1/blobs`, { method: 'POST', body: blob });
      expect(again.status).to.equal(200);
    });

    it('checks Content-MD5 when given', async () => {
      const response = await fetch(`${server.url}/v1/blobs`, {
        method: 'POST',
        body: blob,
        headers: { 'Content-MD5': contentMd5('other') },
      });
      expect(response.status).to.equal(400);
      expect((await problemOf(response)).code).to.equal('digest-mismatch');
    });
  });

  describe('GET and HEAD /v1/blobs/{md5}', () => {
    beforeEach(async () => {
      expect((await put(blob)).status).to.equal(201);
    });

    it('streams the blob with ETag, Content-Length, Accept-Ranges and X-Cache', async () => {
      const response = await fetch(`${server.url}/v1/blobs/${key}`);
      expect(response.status).to.equal(200);
      expect(response.headers.get('etag')).to.equal(`"${key}"`);
      expect(response.headers.get('content-length')).to.equal(String(blob.length));
      expect(response.headers.get('accept-ranges')).to.equal('bytes');
      expect(response.headers.get('x-cache')).to.equal('hit');
      expect(Buffer.from(await response.arrayBuffer()).equals(blob)).to.be.true;
    });

    it('answers a hit the same on the fast path as through the express app', async () => {
      const fast = await fetch(`${server.url}/v1/blobs/${key}`);
      // Any conditional header routes the request through express instead.
      const routed = await fetch(`${server.url}/v1/blobs/${key}`, {
        headers: { 'If-None-Match': '"other"' },
      });
      const comparable = (response: Response) =>
        [...response.headers.entries()]
          .filter(([name]) => !['date', 'x-request-id'].includes(name))
          .sort();
      expect(comparable(fast)).to.deep.equal(comparable(routed));
      expect(Buffer.from(await fast.arrayBuffer()).equals(Buffer.from(await routed.arrayBuffer())))
        .to.be.true;
    });

    it('reads through from disk (X-Cache: miss) and fills the memory tier', async () => {
      await server.cache.delete(key);
      const miss = await fetch(`${server.url}/v1/blobs/${key}`);
      expect(miss.headers.get('x-cache')).to.equal('miss');
      expect(Buffer.from(await miss.arrayBuffer()).equals(blob)).to.be.true;
      // The copy is kept once the read has verified it, which can be just after the client
      // has the last byte.
      await eventually(
        'the memory tier to hold the blob',
        async () => (await server.cache.head(key)) !== null,
      );
      const hit = await fetch(`${server.url}/v1/blobs/${key}`);
      expect(hit.headers.get('x-cache')).to.equal('hit');
      expect(Buffer.from(await hit.arrayBuffer()).equals(blob)).to.be.true;
    });

    it('answers HEAD like GET without a body', async () => {
      const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'HEAD' });
      expect(response.status).to.equal(200);
      expect(response.headers.get('content-length')).to.equal(String(blob.length));
      expect(response.headers.get('etag')).to.equal(`"${key}"`);
      expect(response.headers.get('x-cache')).to.equal('hit');
      expect((await response.arrayBuffer()).byteLength).to.equal(0);
    });

    it('answers 404 problem+json for a blob that is not stored', async () => {
      const response = await fetch(`${server.url}/v1/blobs/${md5('absent')}`);
      expect(response.status).to.equal(404);
      expect((await problemOf(response)).code).to.equal('blob-not-found');
      const head = await fetch(`${server.url}/v1/blobs/${md5('absent')}`, { method: 'HEAD' });
      expect(head.status).to.equal(404);
    });

    it('serves byte ranges with 206 from memory and from disk', async () => {
      for (const tier of ['hit', 'miss']) {
        if (tier === 'miss') await server.cache.delete(key);
        const cases: [string, number, number][] = [
          ['bytes=0-99', 0, 99],
          ['bytes=1000-', 1000, blob.length - 1],
          ['bytes=-500', blob.length - 500, blob.length - 1],
          [`bytes=299990-999999`, 299990, blob.length - 1],
        ];
        for (const [range, start, end] of cases) {
          const response = await fetch(`${server.url}/v1/blobs/${key}`, {
            headers: { Range: range },
          });
          expect(response.status, `${tier} ${range}`).to.equal(206);
          expect(response.headers.get('content-range')).to.equal(
            `bytes ${start}-${end}/${blob.length}`,
          );
          expect(response.headers.get('x-cache')).to.equal(tier);
          const body = Buffer.from(await response.arrayBuffer());
          expect(body.equals(blob.subarray(start, end + 1)), range).to.be.true;
        }
      }
    });

    it('answers 416 with Content-Range for a range past the end', async () => {
      for (const range of [`bytes=${blob.length}-`, 'bytes=-0']) {
        const response = await fetch(`${server.url}/v1/blobs/${key}`, {
          headers: { Range: range },
        });
        expect(response.status, range).to.equal(416);
        expect(response.headers.get('content-range')).to.equal(`bytes */${blob.length}`);
        expect((await problemOf(response)).code).to.equal('range-not-satisfiable');
      }
    });

    it('ignores a Range whose If-Range names another ETag, and honours a matching one', async () => {
      const stale = await fetch(`${server.url}/v1/blobs/${key}`, {
        headers: { Range: 'bytes=0-9', 'If-Range': '"0123"' },
      });
      expect(stale.status).to.equal(200);
      expect((await stale.arrayBuffer()).byteLength).to.equal(blob.length);
      const fresh = await fetch(`${server.url}/v1/blobs/${key}`, {
        headers: { Range: 'bytes=0-9', 'If-Range': `"${key}"` },
      });
      expect(fresh.status).to.equal(206);
      expect((await fresh.arrayBuffer()).byteLength).to.equal(10);
    });

    it('answers 304 to a matching If-None-Match and 200 to another', async () => {
      for (const header of [`"${key}"`, `W/"${key}"`, `"aaa", "${key}"`, '*']) {
        const response = await fetch(`${server.url}/v1/blobs/${key}`, {
          headers: { 'If-None-Match': header },
        });
        expect(response.status, header).to.equal(304);
        expect(response.headers.get('etag')).to.equal(`"${key}"`);
      }
      const other = await fetch(`${server.url}/v1/blobs/${key}`, {
        headers: { 'If-None-Match': '"nope"' },
      });
      expect(other.status).to.equal(200);
      await other.arrayBuffer();
    });
  });

  describe('DELETE /v1/blobs/{md5}', () => {
    it('removes the blob from every tier with 204', async () => {
      expect((await put(blob)).status).to.equal(201);
      const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'DELETE' });
      expect(response.status).to.equal(204);
      expect(await server.cache.head(key)).to.equal(null);
      expect(await server.store.head(key)).to.equal(null);
      expect((await fetch(`${server.url}/v1/blobs/${key}`)).status).to.equal(404);
      expect((await fetch(`${server.url}/v1/blobs/${key}`, { method: 'DELETE' })).status).to.equal(
        204,
      );
    });

    it('wins against a fill that is under way', async () => {
      const large = blobOf(3 * 1024 * 1024, 11);
      const largeKey = md5(large);
      expect((await put(large)).status).to.equal(201);
      await server.cache.delete(largeKey);
      const reading = await fetch(`${server.url}/v1/blobs/${largeKey}`);
      expect(reading.headers.get('x-cache')).to.equal('miss');
      const reader = reading.body!.getReader();
      await reader.read();
      expect(
        (await fetch(`${server.url}/v1/blobs/${largeKey}`, { method: 'DELETE' })).status,
      ).to.equal(204);
      while (!(await reader.read()).done);
      // The fill settles just after its last byte: give it a moment, then insist.
      for (let i = 0; i < 50 && (await server.cache.head(largeKey)) !== null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await server.cache.head(largeKey)).to.equal(null);
      expect((await fetch(`${server.url}/v1/blobs/${largeKey}`)).status).to.equal(404);
    });
  });

  describe('POST /v1/blobs/missing', () => {
    it('returns the subset of keys that is not stored', async () => {
      expect((await put(blob)).status).to.equal(201);
      const absent = md5('absent');
      const response = await fetch(`${server.url}/v1/blobs/missing`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify([key, absent, absent]),
      });
      expect(response.status).to.equal(200);
      expect(await response.json()).to.deep.equal([absent]);
    });

    it('rejects a body that is not a JSON array of keys with 400 naming the bad element', async () => {
      const cases = ['{"keys":[]}', '["abc"]', `["${key}", 5]`, 'not json'];
      for (const body of cases) {
        const response = await fetch(`${server.url}/v1/blobs/missing`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body,
        });
        expect(response.status, body).to.equal(400);
        expect((await problemOf(response)).code).to.equal('invalid-body');
      }
    });

    it('rejects another media type with 415', async () => {
      const response = await fetch(`${server.url}/v1/blobs/missing`, {
        method: 'POST',
        body: `["${key}"]`,
      });
      expect(response.status).to.equal(415);
      expect((await problemOf(response)).code).to.equal('unsupported-media-type');
    });
  });

  describe('routing and operations endpoints', () => {
    it('answers an unknown route with 404 problem+json', async () => {
      const response = await fetch(`${server.url}/v2/nothing`);
      expect(response.status).to.equal(404);
      expect((await problemOf(response)).code).to.equal('route-not-found');
    });

    it('answers a known route with the wrong method with 405 and Allow', async () => {
      const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'PATCH', body: 'x' });
      expect(response.status).to.equal(405);
      expect(response.headers.get('allow')).to.contain('GET');
      expect((await problemOf(response)).code).to.equal('method-not-allowed');
    });

    it('serves liveness, readiness and Prometheus metrics', async () => {
      expect((await fetch(`${server.url}/healthz`)).status).to.equal(200);
      expect((await fetch(`${server.url}/readyz`)).status).to.equal(200);
      await put(blob);
      await (await fetch(`${server.url}/v1/blobs/${key}`)).arrayBuffer();
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).to.match(
        /blobcache_http_requests_total\{method="PUT",route="\/v1\/blobs\/\{md5\}",status="201"\} 1/,
      );
      expect(metrics).to.match(/blobcache_cache_requests_total\{result="hit"\} 1/);
      expect(metrics).to.match(new RegExp(`blobcache_bytes_received_total ${blob.length}`));
      expect(metrics).to.match(new RegExp(`blobcache_bytes_sent_total ${blob.length}`));
      expect(metrics).to.contain('blobcache_http_request_duration_seconds_bucket');
    });

    it('reports not ready (503 problem+json) while draining', async () => {
      let draining = false;
      const drainable = await startTestServer({ isDraining: () => draining });
      try {
        expect((await fetch(`${drainable.url}/readyz`)).status).to.equal(200);
        draining = true;
        const response = await fetch(`${drainable.url}/readyz`);
        expect(response.status).to.equal(503);
        expect(response.headers.get('retry-after')).to.equal('1');
        expect((await problemOf(response)).code).to.equal('service-unavailable');
      } finally {
        await drainable.stop();
      }
    });

    it('echoes a sane X-Request-Id and puts it in problem bodies', async () => {
      const response = await fetch(`${server.url}/v1/blobs/bad`, {
        headers: { 'X-Request-Id': 'req-42' },
      });
      expect(response.headers.get('x-request-id')).to.equal('req-42');
      expect(await response.json()).to.include({ requestId: 'req-42' });
    });
  });
});
