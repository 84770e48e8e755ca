import type { ByteRange } from '../blob/store.ts';

export type RangeDecision =
  { kind: 'whole' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

// The range unit is case-insensitive (RFC 9110 §14.1).
const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/i;

/**
 * Decides how to answer a `Range` header for a blob of `size` bytes (RFC 9110 §14.2).
 * Only one range is served; a multi-range or malformed header is ignored (a 200 with the
 * whole blob), which the RFC allows and every client handles.
 */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'whole' };
  const match = SINGLE_RANGE.exec(header.replace(/\s+/g, ''));
  if (match === null) return { kind: 'whole' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'whole' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: 'whole' };
  return { kind: 'partial', range: { start, end } };
}

function entityTags(header: string): string[] {
  return header.split(',').map((tag) => tag.trim().replace(/^W\//, ''));
}

/**
 * `If-None-Match` uses weak comparison: `W/"x"` matches `"x"`; `*` matches anything stored.
 * True when the tag list names `etag` (the caller checks that the blob is stored).
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return entityTags(header).includes(etag);
}

/**
 * `If-Range` needs a strong match; a date (we keep none) or another tag means the client's
 * copy differs, so the range is dropped and the whole blob sent.
 */
export function ifRangeAllows(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  return header.trim() === etag;
}
