import { expect } from 'chai';
import { blobOf, md5 } from '../harness/blobs.ts';
import { startTestServer, type TestServer } from '../harness/dataplane.ts';
import { problemOf } from '../harness/http.ts';

describe('bearer-token scopes', () => {
  let server: TestServer;
  const blob = blobOf(1000, 5);
  const key = md5(blob);
  const readToken = 'read-secret-0123456789';
  const writeToken = 'write-secret-9876543210';
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  before(async () => {
    server = await startTestServer({ auth: { readToken, writeToken } });
  });
  after(async () => {
    await server.stop();
  });

  it('refuses an upload without a token with 401 and WWW-Authenticate', async () => {
    const response = await fetch(`${server.url}/v1/blobs/${key}`, { method: 'PUT', body: blob });
    expect(response.status).to.equal(401);
    expect(response.headers.get('www-authenticate')).to.match(/^Bearer/);
    expect((await problemOf(response)).code).to.equal('unauthorized');
  });

  it('refuses a wrong token with 401', async () => {
    const response = await fetch(`${server.url}/v1/blobs/${key}`, {
      method: 'PUT',
      body: blob,
      headers: bearer('write-secret-987654321X'),
    });
    expect(response.status).to.equal(401);
    expect((await problemOf(response)).code).to.equal('unauthorized');
  });

  it('refuses a malformed Authorization header with 401', async () => {
    const response = await fetch(`${server.url}/v1/blobs/${key}`, {
      headers: { Authorization: `Basic abc` },
    });
    expect(response.status).to.equal(401);
  });

  it('refuses an upload with the read token with 403', async () => {
    const response = await fetch(`${server.url}/v1/blobs/${key}`, {
      method: 'PUT',
      body: blob,
      headers: bearer(readToken),
    });
    expect(response.status).to.equal(403);
    expect((await problemOf(response)).code).to.equal('forbidden');
    const del = await fetch(`${server.url}/v1/blobs/${key}`, {
      method: 'DELETE',
      headers: bearer(readToken),
    });
    expect(del.status).to.equal(403);
    const post = await fetch(`${server.url}/v1/blobs`, {
      method: 'POST',
      body: blob,
      headers: bearer(readToken),
    });
    expect(post.status).to.equal(403);
  });

  it('lets the write token upload and read, and the read token read', async () => {
    const put = await fetch(`${server.url}/v1/blobs/${key}`, {
      method: 'PUT',
      body: blob,
      headers: bearer(writeToken),
    });
    expect(put.status).to.equal(201);
    for (const token of [readToken, writeToken]) {
      const got = await fetch(`${server.url}/v1/blobs/${key}`, { headers: bearer(token) });
      expect(got.status).to.equal(200);
      expect(Buffer.from(await got.arrayBuffer()).equals(blob)).to.be.true;
    }
    const missing = await fetch(`${server.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { ...bearer(readToken), 'Content-Type': 'application/json' },
      body: JSON.stringify([key]),
    });
    expect(await missing.json()).to.deep.equal([]);
  });

  it('refuses reads without a token with 401 when a read token is set', async () => {
    const response = await fetch(`${server.url}/v1/blobs/${key}`);
    expect(response.status).to.equal(401);
    const missing = await fetch(`${server.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '[]',
    });
    expect(missing.status).to.equal(401);
  });

  it('leaves probes and metrics open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`${server.url}${path}`)).status, path).to.equal(200);
    }
  });
});

describe('with only a write token set', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ auth: { writeToken: 'w' } });
  });
  after(async () => {
    await server.stop();
  });

  it('leaves reads open and guards writes', async () => {
    const blob = blobOf(10, 1);
    expect(
      (await fetch(`${server.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob })).status,
    ).to.equal(401);
    const put = await fetch(`${server.url}/v1/blobs/${md5(blob)}`, {
      method: 'PUT',
      body: blob,
      headers: { Authorization: 'Bearer w' },
    });
    expect(put.status).to.equal(201);
    expect((await fetch(`${server.url}/v1/blobs/${md5(blob)}`)).status).to.equal(200);
  });
});
