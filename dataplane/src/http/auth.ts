import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ForbiddenError, UnauthorizedError } from '../blob/errors.ts';

export type Scope = 'read' | 'write';

export interface AuthTokens {
  /** Grants reads. Unset: reads are open. */
  readToken?: string;
  /** Grants reads and writes. Unset: writes are open. */
  writeToken?: string;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Compares in constant time: both sides are hashed first so that neither the length nor
 * the position of the first differing byte leaks through timing.
 */
export function tokenMatches(offered: string, expected: string): boolean {
  return timingSafeEqual(digest(offered), digest(expected));
}

function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** The scopes a request's `Authorization` header grants, or an error saying why it is refused. */
export function grantedScopes(header: string | undefined, tokens: AuthTokens): Set<Scope> {
  const granted = new Set<Scope>();
  if (tokens.readToken === undefined) granted.add('read');
  if (tokens.writeToken === undefined) granted.add('write').add('read');
  if (header === undefined) return granted;
  const token = bearerToken(header);
  if (token === undefined) {
    throw new UnauthorizedError('The Authorization header must be "Bearer <token>"');
  }
  const isWrite = tokens.writeToken !== undefined && tokenMatches(token, tokens.writeToken);
  const isRead = tokens.readToken !== undefined && tokenMatches(token, tokens.readToken);
  if (!isWrite && !isRead) throw new UnauthorizedError('The bearer token is not valid');
  if (isWrite) granted.add('write').add('read');
  if (isRead) granted.add('read');
  return granted;
}

/** Refuses the request unless it carries a token granting `scope` (or the scope is open). */
export function requireScope(scope: Scope, tokens: AuthTokens): RequestHandler {
  return (req, _res, next) => {
    const header = req.get('authorization');
    const granted = grantedScopes(header, tokens);
    if (granted.has(scope)) {
      next();
      return;
    }
    if (header === undefined) {
      throw new UnauthorizedError(`This call needs a bearer token with the ${scope} scope`);
    }
    throw new ForbiddenError(`The bearer token does not grant the ${scope} scope`);
  };
}
