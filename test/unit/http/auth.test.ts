import { expect } from 'chai';
import { ForbiddenError, UnauthorizedError } from '../../../dataplane/src/blob/errors.ts';
import { grantedScopes, tokenMatches } from '../../../dataplane/src/http/auth.ts';

describe('bearer scopes', () => {
  const tokens = { readToken: 'r', writeToken: 'w' };
  it('grants everything when no token is configured', () => {
    expect([...grantedScopes(undefined, {})].sort()).to.deep.equal(['read', 'write']);
  });
  it('grants nothing to an anonymous caller when both tokens are set', () => {
    expect(grantedScopes(undefined, tokens).size).to.equal(0);
  });
  it('grants read to the read token and both to the write token', () => {
    expect([...grantedScopes('Bearer r', tokens)]).to.deep.equal(['read']);
    expect([...grantedScopes('bearer w', tokens)].sort()).to.deep.equal(['read', 'write']);
  });
  it('refuses unknown tokens and other schemes as unauthorized', () => {
    expect(() => grantedScopes('Bearer nope', tokens)).to.throw(UnauthorizedError, /not valid/);
    expect(() => grantedScopes('Basic dzp3', tokens)).to.throw(UnauthorizedError, /Bearer <token>/);
  });
  it('compares tokens of any length without throwing', () => {
    expect(tokenMatches('a', 'a')).to.be.true;
    expect(tokenMatches('a', 'ab')).to.be.false;
    expect(tokenMatches('', 'x'.repeat(1000))).to.be.false;
    expect(new ForbiddenError('x').status).to.equal(403);
  });
});
