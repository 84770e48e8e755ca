import { expect } from 'chai';
import { BlobTooLargeError, InvalidKeyError } from '../../../dataplane/src/blob/errors.ts';
import { parseKeyList } from '../../../dataplane/src/http/blobs.ts';
import {
  PROBLEM_TYPE_BASE,
  problemBody,
  toBlobcacheError,
} from '../../../dataplane/src/http/problem.ts';

describe('problem translation', () => {
  it('keeps typed errors and renders RFC 9457 fields with a stable code', () => {
    const error = new BlobTooLargeError('too big');
    expect(toBlobcacheError(error)).to.equal(error);
    expect(problemBody(error, '/v1/blobs/x', 'id-1')).to.deep.equal({
      type: `${PROBLEM_TYPE_BASE}blob-too-large`,
      title: 'Blob too large',
      status: 413,
      detail: 'too big',
      code: 'blob-too-large',
      instance: '/v1/blobs/x',
      requestId: 'id-1',
    });
  });
  it('turns body-parser failures into invalid-body 400s', () => {
    const parserError = Object.assign(new SyntaxError('Unexpected token'), {
      status: 400,
      type: 'entity.parse.failed',
    });
    const problem = toBlobcacheError(parserError);
    expect(problem.status).to.equal(400);
    expect(problem.code).to.equal('invalid-body');
  });
  it('hides unknown errors behind a 500 that keeps the cause for the logs', () => {
    const cause = new Error('EIO: disk on fire');
    const problem = toBlobcacheError(cause);
    expect(problem.status).to.equal(500);
    expect(problem.message).to.not.contain('disk');
    expect(problem.cause).to.equal(cause);
  });
  it('names the error class for typed errors', () => {
    expect(new InvalidKeyError('x').name).to.equal('InvalidKeyError');
  });
});

describe('parseKeyList', () => {
  const key = 'a'.repeat(32);
  it('deduplicates in order', () => {
    expect(parseKeyList([key, 'b'.repeat(32), key], 10)).to.deep.equal([key, 'b'.repeat(32)]);
  });
  it('names the first bad element and enforces the limit', () => {
    expect(() => parseKeyList([key, 'A'.repeat(32)], 10)).to.throw(/Element 1/);
    expect(() => parseKeyList({ keys: [] }, 10)).to.throw(/JSON array/);
    expect(() => parseKeyList([key, key, key], 2)).to.throw(/At most 2 keys/);
  });
});
