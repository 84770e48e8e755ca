import { expect } from 'chai';
import {
  assertBlobKey,
  contentMd5ToHex,
  formatReprDigest,
  isBlobKey,
  md5Hex,
  parseReprDigestSha256,
} from '../../../dataplane/src/blob/digest.ts';
import { InvalidHeaderError, InvalidKeyError } from '../../../dataplane/src/blob/errors.ts';

describe('digest helpers', () => {
  it('accepts exactly 32 lowercase hex characters as a key', () => {
    expect(isBlobKey(md5Hex('x'))).to.be.true;
    for (const bad of [
      '',
      'A'.repeat(32),
      'a'.repeat(31),
      'a'.repeat(33),
      `${'a'.repeat(31)}g`,
      `${'a'.repeat(32)}\n`,
    ]) {
      expect(isBlobKey(bad), JSON.stringify(bad)).to.be.false;
    }
  });

  it('names the bad key, shortened, in the error', () => {
    expect(() => assertBlobKey('z'.repeat(500))).to.throw(
      InvalidKeyError,
      /^'z{80}' is not a blob key/,
    );
  });

  it('decodes Content-MD5 to hex and rejects anything but 16 base64 bytes', () => {
    expect(contentMd5ToHex('XUFAKrxLKna5cZ2REBfFkg==')).to.equal(
      '5d41402abc4b2a76b9719d911017c592',
    );
    for (const bad of ['', 'abc', '!!!!', 'XUFAKrxLKna5cZ2REBfF', 'XUFAKrxLKna5cZ2REBfFkgAA']) {
      expect(() => contentMd5ToHex(bad), bad).to.throw(InvalidHeaderError);
    }
  });

  it('finds sha-256 in a Repr-Digest dictionary and ignores other algorithms', () => {
    const sha = 'LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=';
    expect(parseReprDigestSha256(`sha-256=:${sha}:`)).to.equal(sha);
    expect(parseReprDigestSha256(`sha-512=:abc:, SHA-256=:${sha}:`)).to.equal(sha);
    expect(parseReprDigestSha256('sha-512=:abc:')).to.equal(null);
    expect(formatReprDigest(sha)).to.equal(`sha-256=:${sha}:`);
  });

  it('rejects a malformed sha-256 member', () => {
    for (const bad of ['sha-256=abc', 'sha-256=:abc:', 'sha-256', 'sha-256=::']) {
      expect(() => parseReprDigestSha256(bad), bad).to.throw(InvalidHeaderError);
    }
  });
});
