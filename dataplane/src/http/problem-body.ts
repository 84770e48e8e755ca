import type { BlobcacheError } from '../blob/errors.ts';

export const PROBLEM_TYPE_BASE = 'https://blobcache.io/problems/';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  instance?: string;
  requestId?: string;
}

/** The RFC 9457 body for an error. */
export function problemBody(
  error: BlobcacheError,
  instance?: string,
  requestId?: string,
): ProblemDetails {
  return {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(instance === undefined ? {} : { instance }),
    ...(requestId === undefined ? {} : { requestId }),
  };
}
