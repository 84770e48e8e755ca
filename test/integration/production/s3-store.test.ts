import { CreateBucketCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { S3Store } from '../../../dataplane/src/backends/s3.ts';
import { DigestConflictError } from '../../../dataplane/src/blob/errors.ts';
import { blobOf, digestOf, md5, sha256Base64 } from '../../harness/blobs.ts';
import { BUCKET, s3Client } from '../../harness/production.ts';
import { startS3Server, type S3ServerHandle } from '../../harness/services.ts';

const MiB = 1024 * 1024;

/** Streams `blob` in 64 KiB pieces, as staged chunks or a socket would. */
function streamOf(blob: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < blob.length; offset += 64 * 1024)
    pieces.push(blob.subarray(offset, offset + 64 * 1024));
  return Readable.from(pieces, { objectMode: false });
}

describe('S3 store against a real S3 server: uploads of already verified bytes', function () {
  this.timeout(60_000);
  let dir: string;
  let server: S3ServerHandle;
  let client: S3Client;
  let store: S3Store;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blobcache-s3-store-'));
    server = await startS3Server({ dir });
    client = s3Client(server.endpoint);
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    store = new S3Store({ client, bucket: BUCKET, prefix: 'blobs' });
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams a verified blob up in one request and reads it back whole, SHA-256 kept', async () => {
    const blob = blobOf(3 * MiB + 17, 501);
    const key = md5(blob);
    const sha256 = sha256Base64(blob);
    const result = await store.put(streamOf(blob), {
      key,
      size: blob.length,
      sha256,
      sourceVerified: true,
    });
    expect(result).to.deep.equal({ info: { key, size: blob.length, sha256 }, created: true });
    expect(await store.head(key)).to.deep.equal({ key, size: blob.length, sha256 });
    const read = await store.get(key);
    expect(await digestOf(read!.stream)).to.deep.equal({ md5: key, size: blob.length });
  });

  it('never keeps bytes that differ from the key, even from a source said to be verified', async () => {
    const blob = blobOf(MiB, 502);
    const key = md5(blob);
    const damaged = Buffer.from(blob);
    damaged[1234] = damaged[1234]! ^ 0xff;
    let failure: unknown;
    await store
      .put(streamOf(damaged), { key, size: blob.length, sourceVerified: true })
      .catch((error: unknown) => (failure = error));
    // The server checks Content-MD5 (the key) before it keeps the object.
    expect(failure).to.be.instanceOf(Error);
    expect((failure as Error).name).to.equal('BadDigest');
    expect(await store.head(key)).to.equal(null);
  });

  it('fails with the source error when a verified source breaks mid-stream, and keeps nothing', async () => {
    const blob = blobOf(2 * MiB, 503);
    const key = md5(blob);
    const broken = Readable.from(
      (async function* () {
        yield blob.subarray(0, MiB);
        await new Promise((resolve) => setTimeout(resolve, 50));
        throw new Error('chunk 1 is gone');
      })(),
      { objectMode: false },
    );
    let failure: unknown;
    await store
      .put(broken, { key, size: blob.length, sourceVerified: true })
      .catch((error: unknown) => (failure = error));
    expect((failure as Error | undefined)?.message).to.equal('chunk 1 is gone');
    expect(await store.head(key)).to.equal(null);
  });

  it('signs bodies that carry Content-MD5 without hashing them (UNSIGNED-PAYLOAD)', async () => {
    const seen: string[] = [];
    client.middlewareStack.add(
      (next) => (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        seen.push(headers['x-amz-content-sha256'] ?? '(none)');
        return next(args);
      },
      { step: 'finalizeRequest', name: 'testRecordPayloadHash' },
    );
    try {
      const blob = blobOf(64 * 1024, 504);
      await store.put(Readable.from([blob], { objectMode: false }), {
        key: md5(blob),
        size: blob.length,
      });
      const head = await client.send(
        new HeadObjectCommand({ Bucket: BUCKET, Key: store.objectKey(md5(blob)) }),
      );
      expect(head.ContentLength).to.equal(blob.length);
    } finally {
      client.middlewareStack.remove('testRecordPayloadHash');
    }
    // HEAD (the existence check), the PutObject with Content-MD5, then the HEAD above.
    expect(seen).to.have.length(3);
    expect(seen[1]).to.equal('UNSIGNED-PAYLOAD');
    expect(seen[0]).to.not.equal('UNSIGNED-PAYLOAD');
  });

  /** The S3 operations `store` sends while `action` runs, by name, in order. */
  async function operationsDuring(action: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    client.middlewareStack.add(
      (next, context) => (args) => {
        seen.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'testRecordOperations' },
    );
    try {
      await action();
    } finally {
      client.middlewareStack.remove('testRecordOperations');
    }
    return seen;
  }

  it('sends no HEAD before a verified upload that can be read again: one conditional PutObject', async () => {
    const blob = blobOf(48 * 1024, 505);
    const key = md5(blob);
    const sha256 = sha256Base64(blob);
    let result;
    const sent = await operationsDuring(async () => {
      result = await store.put(streamOf(blob), {
        key,
        size: blob.length,
        sha256,
        sourceVerified: true,
        reread: () => streamOf(blob),
      });
    });
    expect(sent).to.deep.equal(['PutObjectCommand']);
    expect(result).to.deep.equal({ info: { key, size: blob.length, sha256 }, created: true });
    const read = await store.get(key);
    expect(await digestOf(read!.stream)).to.deep.equal({ md5: key, size: blob.length });
  });

  it('keeps the stored object when a verified upload finds its key taken, and applies the one-content rule to it', async () => {
    const blob = blobOf(32 * 1024, 506);
    const key = md5(blob);
    await store.put(streamOf(blob), { key, size: blob.length, sourceVerified: true });
    const before = await client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: store.objectKey(key) }),
    );
    // The same bytes again, now with a SHA-256: found stored, compared by reading it, kept.
    let again;
    const sent = await operationsDuring(async () => {
      again = await store.put(streamOf(blob), {
        key,
        size: blob.length,
        sha256: sha256Base64(blob),
        sourceVerified: true,
        reread: () => streamOf(blob),
      });
    });
    expect(again).to.deep.equal({
      info: { key, size: blob.length, sha256: sha256Base64(blob) },
      created: false,
    });
    expect(sent.slice(0, 2)).to.deep.equal(['PutObjectCommand', 'HeadObjectCommand']);
    expect(sent.filter((name) => name === 'PutObjectCommand')).to.have.length(1);
    const after = await client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: store.objectKey(key) }),
    );
    expect(after.LastModified?.getTime()).to.equal(before.LastModified?.getTime());
    // Another content claimed under the key (an MD5 collision): a conflict, nothing replaced.
    let failure: unknown;
    await store
      .put(streamOf(blob), {
        key,
        size: blob.length,
        sha256: sha256Base64(Buffer.from('other content')),
        sourceVerified: true,
        reread: () => streamOf(blob),
      })
      .catch((error: unknown) => (failure = error));
    expect(failure).to.be.instanceOf(DigestConflictError);
    const read = await store.get(key);
    expect(await digestOf(read!.stream)).to.deep.equal({ md5: key, size: blob.length });
  });
});
