import { expect } from 'chai';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobTooLargeError,
  DigestMismatchError,
  SizeMismatchError,
} from '../../../dataplane/src/blob/errors.ts';
import { DigestVerifier, type VerifierExpectations } from '../../../dataplane/src/blob/verifier.ts';
import { md5, sha256Base64 } from '../../harness/blobs.ts';

async function run(
  data: Buffer,
  expected: VerifierExpectations,
): Promise<{ verifier: DigestVerifier; out: Buffer[] }> {
  const verifier = new DigestVerifier(expected);
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      out.push(chunk);
      cb();
    },
  });
  const pieces = [data.subarray(0, 3), data.subarray(3)];
  await pipeline(Readable.from(pieces, { objectMode: false }), verifier, sink);
  return { verifier, out };
}

describe('DigestVerifier', () => {
  const data = Buffer.from('hello, blobcache');

  it('passes bytes through and reports the digest once verified', async () => {
    const { verifier, out } = await run(data, {
      md5: md5(data),
      size: data.length,
      sha256: sha256Base64(data),
    });
    expect(Buffer.concat(out).equals(data)).to.be.true;
    expect(verifier.result).to.deep.equal({
      md5: md5(data),
      size: data.length,
      sha256: sha256Base64(data),
    });
  });

  it('computes the MD5 when none is expected', async () => {
    const { verifier } = await run(data, {});
    expect(verifier.result?.md5).to.equal(md5(data));
  });

  const failures: [string, VerifierExpectations, new (...args: never[]) => Error][] = [
    ['a wrong MD5', { md5: md5('other') }, DigestMismatchError],
    ['a wrong SHA-256', { sha256: sha256Base64('other') }, DigestMismatchError],
    ['a short body', { size: data.length + 1 }, SizeMismatchError],
    ['a long body', { size: data.length - 1 }, SizeMismatchError],
    ['a body over the limit', { maxBytes: 5 }, BlobTooLargeError],
  ];
  for (const [name, expected, errorClass] of failures) {
    it(`fails the stream, before its end is seen downstream, on ${name}`, async () => {
      let finished = false;
      const verifier = new DigestVerifier(expected);
      const sink = new Writable({
        write(_c, _e, cb) {
          cb();
        },
        final(cb) {
          finished = true;
          cb();
        },
      });
      const error = await pipeline(
        Readable.from([data], { objectMode: false }),
        verifier,
        sink,
      ).then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(error).to.be.instanceOf(errorClass);
      expect(finished).to.be.false;
      expect(verifier.result).to.equal(undefined);
    });
  }

  it('runs onMismatch to completion before any consumer sees the failure', async () => {
    const events: string[] = [];
    const verifier = new DigestVerifier(
      { md5: md5('something else') },
      {
        onMismatch: async (error) => {
          events.push(`hook ${error.constructor.name}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
          events.push('hook done');
        },
      },
    );
    const outcome = await pipeline(
      Readable.from([Buffer.from('hello')], { objectMode: false }),
      verifier,
      new Writable({ write: (_chunk, _e, cb) => cb() }),
    ).catch((error: unknown) => error);
    events.push('failed');
    expect(outcome).to.be.instanceOf(DigestMismatchError);
    expect(events).to.deep.equal(['hook DigestMismatchError', 'hook done', 'failed']);
  });
});
