import { Ajv2020 } from 'ajv/dist/2020.js';
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { blobOf, contentMd5, md5, sha256Base64 } from '../harness/blobs.ts';
import { COLLIDING_MD5, COLLIDING_PAIR } from '../harness/md5-collision.ts';
import { REPO_ROOT, startTestServer, type TestServer } from '../harness/dataplane.ts';

interface MediaType {
  schema?: unknown;
}
interface DocumentedResponse {
  $ref?: string;
  content?: Record<string, MediaType>;
  headers?: Record<string, unknown>;
}
interface Operation {
  operationId: string;
  responses: Record<string, DocumentedResponse>;
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { responses: Record<string, DocumentedResponse> };
}

const METHODS = ['get', 'head', 'put', 'post', 'delete'];
const MiB = 1024 * 1024;
const stored = blobOf(5000, 31);
const storedKey = md5(stored);
const fresh = () => blobOf(777, Math.floor(Math.random() * 1e9));
const absentKey = md5('never stored');
const token = { read: 'r-token', write: 'w-token' };
const auth = (scope: 'read' | 'write') => ({ Authorization: `Bearer ${token[scope]}` });
const json = { 'Content-Type': 'application/json' };

type Scenario = { status: number; init: (base: string) => [string, RequestInit] };

const [collidingFirst, collidingSecond] = COLLIDING_PAIR;
const reprDigest = (block: Buffer) => ({ 'Repr-Digest': `sha-256=:${sha256Base64(block)}:` });
/** An upload of the other half of a stored MD5 collision, with its SHA-256: a 409. */
const collision = (base: string, method: string, path = `/v1/blobs/${COLLIDING_MD5}`) =>
  [
    `${base}${path}`,
    {
      method,
      body: collidingSecond,
      headers: { ...auth('write'), ...reprDigest(collidingSecond) },
    },
  ] as [string, RequestInit];
/** If-None-Match: * on a key already stored: a 412 before the body is read. */
const stale = (base: string, method: string) =>
  [
    `${base}/v1/blobs/${storedKey}`,
    { method, body: stored, headers: { ...auth('write'), 'If-None-Match': '*' } },
  ] as [string, RequestInit];

/** A request for every documented (operation, status) pair that can be produced here. */
const SCENARIOS: Record<string, Scenario[]> = {
  getBlob: [
    { status: 200, init: (b) => [`${b}/v1/blobs/${storedKey}`, { headers: auth('read') }] },
    {
      status: 206,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { headers: { ...auth('read'), Range: 'bytes=0-9' } },
      ],
    },
    {
      status: 304,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { headers: { ...auth('read'), 'If-None-Match': `"${storedKey}"` } },
      ],
    },
    { status: 400, init: (b) => [`${b}/v1/blobs/nope`, { headers: auth('read') }] },
    { status: 401, init: (b) => [`${b}/v1/blobs/${storedKey}`, {}] },
    { status: 404, init: (b) => [`${b}/v1/blobs/${absentKey}`, { headers: auth('read') }] },
    {
      status: 416,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { headers: { ...auth('read'), Range: 'bytes=9999999-' } },
      ],
    },
  ],
  headBlob: [
    {
      status: 200,
      init: (b) => [`${b}/v1/blobs/${storedKey}`, { method: 'HEAD', headers: auth('read') }],
    },
    { status: 400, init: (b) => [`${b}/v1/blobs/nope`, { method: 'HEAD', headers: auth('read') }] },
    { status: 401, init: (b) => [`${b}/v1/blobs/${storedKey}`, { method: 'HEAD' }] },
    {
      status: 404,
      init: (b) => [`${b}/v1/blobs/${absentKey}`, { method: 'HEAD', headers: auth('read') }],
    },
  ],
  putBlob: [
    {
      status: 201,
      init: (b) => {
        const x = fresh();
        return [`${b}/v1/blobs/${md5(x)}`, { method: 'PUT', body: x, headers: auth('write') }];
      },
    },
    {
      status: 200,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { method: 'PUT', body: stored, headers: auth('write') },
      ],
    },
    {
      status: 400,
      init: (b) => [
        `${b}/v1/blobs/${absentKey}`,
        { method: 'PUT', body: stored, headers: auth('write') },
      ],
    },
    { status: 401, init: (b) => [`${b}/v1/blobs/${storedKey}`, { method: 'PUT', body: stored }] },
    {
      status: 403,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { method: 'PUT', body: stored, headers: auth('read') },
      ],
    },
    { status: 409, init: (b) => collision(b, 'PUT') },
    { status: 412, init: (b) => stale(b, 'PUT') },
    {
      status: 413,
      init: (b) => {
        const x = blobOf(MiB + 1, 3);
        return [`${b}/v1/blobs/${md5(x)}`, { method: 'PUT', body: x, headers: auth('write') }];
      },
    },
  ],
  postBlobWithKey: [
    {
      status: 201,
      init: (b) => {
        const x = fresh();
        return [`${b}/v1/blobs/${md5(x)}`, { method: 'POST', body: x, headers: auth('write') }];
      },
    },
    {
      status: 200,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { method: 'POST', body: stored, headers: auth('write') },
      ],
    },
    {
      status: 400,
      init: (b) => [
        `${b}/v1/blobs/${absentKey}`,
        { method: 'POST', body: stored, headers: auth('write') },
      ],
    },
    { status: 401, init: (b) => [`${b}/v1/blobs/${storedKey}`, { method: 'POST', body: stored }] },
    {
      status: 403,
      init: (b) => [
        `${b}/v1/blobs/${storedKey}`,
        { method: 'POST', body: stored, headers: auth('read') },
      ],
    },
    { status: 409, init: (b) => collision(b, 'POST') },
    { status: 412, init: (b) => stale(b, 'POST') },
    {
      status: 413,
      init: (b) => {
        const x = blobOf(MiB + 1, 4);
        return [`${b}/v1/blobs/${md5(x)}`, { method: 'POST', body: x, headers: auth('write') }];
      },
    },
  ],
  deleteBlob: [
    {
      status: 204,
      init: (b) => [`${b}/v1/blobs/${absentKey}`, { method: 'DELETE', headers: auth('write') }],
    },
    { status: 400, init: (b) => [`${b}/v1/blobs/x`, { method: 'DELETE', headers: auth('write') }] },
    { status: 401, init: (b) => [`${b}/v1/blobs/${absentKey}`, { method: 'DELETE' }] },
    {
      status: 403,
      init: (b) => [`${b}/v1/blobs/${absentKey}`, { method: 'DELETE', headers: auth('read') }],
    },
  ],
  postBlob: [
    {
      status: 201,
      init: (b) => [`${b}/v1/blobs`, { method: 'POST', body: fresh(), headers: auth('write') }],
    },
    {
      status: 200,
      init: (b) => [`${b}/v1/blobs`, { method: 'POST', body: stored, headers: auth('write') }],
    },
    {
      status: 400,
      init: (b) => [
        `${b}/v1/blobs`,
        {
          method: 'POST',
          body: stored,
          headers: { ...auth('write'), 'Content-MD5': contentMd5('x') },
        },
      ],
    },
    { status: 401, init: (b) => [`${b}/v1/blobs`, { method: 'POST', body: stored }] },
    {
      status: 403,
      init: (b) => [`${b}/v1/blobs`, { method: 'POST', body: stored, headers: auth('read') }],
    },
    { status: 409, init: (b) => collision(b, 'POST', '/v1/blobs') },
    {
      status: 413,
      init: (b) => [
        `${b}/v1/blobs`,
        { method: 'POST', body: blobOf(MiB + 1, 5), headers: auth('write') },
      ],
    },
  ],
  findMissingBlobs: [
    {
      status: 200,
      init: (b) => [
        `${b}/v1/blobs/missing`,
        {
          method: 'POST',
          body: JSON.stringify([storedKey, absentKey]),
          headers: { ...auth('read'), ...json },
        },
      ],
    },
    {
      status: 400,
      init: (b) => [
        `${b}/v1/blobs/missing`,
        { method: 'POST', body: '["x"]', headers: { ...auth('read'), ...json } },
      ],
    },
    {
      status: 401,
      init: (b) => [`${b}/v1/blobs/missing`, { method: 'POST', body: '[]', headers: json }],
    },
    {
      status: 413,
      init: (b) => [
        `${b}/v1/blobs/missing`,
        {
          method: 'POST',
          body: JSON.stringify(Array.from({ length: 70_000 }, () => absentKey)),
          headers: { ...auth('read'), ...json },
        },
      ],
    },
    {
      status: 415,
      init: (b) => [`${b}/v1/blobs/missing`, { method: 'POST', body: '[]', headers: auth('read') }],
    },
  ],
  liveness: [{ status: 200, init: (b) => [`${b}/healthz`, {}] }],
  readiness: [{ status: 200, init: (b) => [`${b}/readyz`, {}] }],
  metrics: [{ status: 200, init: (b) => [`${b}/metrics`, {}] }],
};

/** Documented answers this suite cannot provoke on the embedded default, and why. */
const NOT_PROVOKED: Record<string, string> = {
  'getBlob 403': 'the write token also grants reads, so no token lacks the read scope',
  'headBlob 403': 'the write token also grants reads, so no token lacks the read scope',
  'findMissingBlobs 403': 'the write token also grants reads, so no token lacks the read scope',
  'getBlob 503': 'needs a tier outage (production tiers)',
  'putBlob 503': 'needs a full cache (production tiers)',
  'postBlobWithKey 503': 'needs a full cache (production tiers)',
  'postBlob 503': 'needs a full cache (production tiers)',
  'putBlob 507': 'needs a full disk: disk-and-directory.test.ts mounts one',
  'postBlobWithKey 507': 'needs a full disk: disk-and-directory.test.ts mounts one',
  'postBlob 507': 'needs a full disk: disk-and-directory.test.ts mounts one',
  'readiness 503': 'provoked while draining in blobs-api.test.ts',
};

describe('docs/openapi.yaml against the running app', () => {
  let server: TestServer;
  let doc: OpenApi;
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });

  before(async () => {
    doc = parse(await readFile(join(REPO_ROOT, 'docs/openapi.yaml'), 'utf8')) as OpenApi;
    ajv.addSchema(doc, 'openapi');
    server = await startTestServer({
      auth: { readToken: token.read, writeToken: token.write },
      maxBlobBytes: MiB,
    });
    const put = await fetch(`${server.url}/v1/blobs/${storedKey}`, {
      method: 'PUT',
      body: stored,
      headers: auth('write'),
    });
    expect(put.status).to.equal(201);
    const first = await fetch(`${server.url}/v1/blobs/${COLLIDING_MD5}`, {
      method: 'PUT',
      body: collidingFirst,
      headers: { ...auth('write'), ...reprDigest(collidingFirst) },
    });
    expect(first.status).to.equal(201);
  });
  after(async () => {
    await server.stop();
  });

  const operations = (): [string, string, Operation][] =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      METHODS.filter((method) => item[method] !== undefined).map(
        (method): [string, string, Operation] => [path, method, item[method]!],
      ),
    );

  const resolve = (response: DocumentedResponse): DocumentedResponse =>
    response.$ref === undefined
      ? response
      : doc.components.responses[response.$ref.split('/').pop()!]!;

  const resolveHeader = (header: unknown): unknown => {
    const ref = (header as { $ref?: string }).$ref;
    return ref === undefined
      ? header
      : (doc.components as unknown as { headers: Record<string, unknown> }).headers[
          ref.split('/').pop()!
        ];
  };

  it('has a scenario for every documented answer, and documents every scenario', () => {
    const documented = operations().flatMap(([, , op]) =>
      Object.keys(op.responses).map((status) => `${op.operationId} ${status}`),
    );
    const provoked = Object.entries(SCENARIOS).flatMap(([id, list]) =>
      list.map((s) => `${id} ${s.status}`),
    );
    expect([...new Set(provoked)].sort()).to.deep.equal(
      documented.filter((k) => NOT_PROVOKED[k] === undefined).sort(),
    );
  });

  it('answers every scenario with the documented status, media type, headers and body schema', async () => {
    for (const [path, method, op] of operations()) {
      for (const scenario of SCENARIOS[op.operationId] ?? []) {
        const [url, init] = scenario.init(server.url);
        const response = await fetch(url, init);
        const label = `${method.toUpperCase()} ${path} (${op.operationId}) expecting ${scenario.status}`;
        expect(response.status, label).to.equal(scenario.status);
        expect((init.method ?? 'GET').toLowerCase(), label).to.equal(method);
        const documented = resolve(op.responses[String(response.status)]!);
        for (const [header, spec] of Object.entries(documented.headers ?? {})) {
          const required = (resolveHeader(spec) as { required?: boolean }).required === true;
          if (required)
            expect(response.headers.has(header), `${label}: header ${header}`).to.be.true;
        }
        const body = Buffer.from(await response.arrayBuffer());
        if (documented.content === undefined || method === 'head') {
          expect(body.length, `${label}: no body documented`).to.equal(0);
          continue;
        }
        const mediaType = (response.headers.get('content-type') ?? '').split(';')[0]!;
        const media = documented.content[mediaType];
        expect(media, `${label}: undocumented media type ${mediaType}`).to.not.equal(undefined);
        if (mediaType.endsWith('json')) {
          const pointer = `${path.replaceAll('~', '~0').replaceAll('/', '~1')}`;
          const responseRef = op.responses[String(response.status)]!.$ref;
          const schemaRef =
            responseRef === undefined
              ? `openapi#/paths/${pointer}/${method}/responses/${response.status}/content/${mediaType.replace('/', '~1')}/schema`
              : `openapi#/components/responses/${responseRef.split('/').pop()}/content/${mediaType.replace('/', '~1')}/schema`;
          const validate = ajv.getSchema(schemaRef);
          expect(validate, `${label}: schema ${schemaRef}`).to.not.equal(undefined);
          const valid = validate!(JSON.parse(body.toString()));
          expect(valid, `${label}: ${ajv.errorsText(validate!.errors)}`).to.be.true;
        }
      }
    }
  });
});
