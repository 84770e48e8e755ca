import { expect } from 'chai';
import { decideRange, ifNoneMatchHits, ifRangeAllows } from '../../../dataplane/src/http/range.ts';

describe('decideRange', () => {
  const cases: [string | undefined, number, ReturnType<typeof decideRange>][] = [
    [undefined, 100, { kind: 'whole' }],
    ['bytes=0-9', 100, { kind: 'partial', range: { start: 0, end: 9 } }],
    ['bytes=90-', 100, { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=90-500', 100, { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=-10', 100, { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=-500', 100, { kind: 'partial', range: { start: 0, end: 99 } }],
    ['bytes = 5 - 6', 100, { kind: 'partial', range: { start: 5, end: 6 } }],
    ['BYTES=0-9', 100, { kind: 'partial', range: { start: 0, end: 9 } }],
    ['Bytes=-10', 100, { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-0', 0, { kind: 'unsatisfiable' }],
    ['bytes=0-1,5-6', 100, { kind: 'whole' }],
    ['bytes=9-2', 100, { kind: 'whole' }],
    ['items=0-1', 100, { kind: 'whole' }],
    ['bytes=-', 100, { kind: 'whole' }],
  ];
  for (const [header, size, expected] of cases) {
    it(`${JSON.stringify(header)} of ${size} bytes → ${expected.kind}`, () => {
      expect(decideRange(header, size)).to.deep.equal(expected);
    });
  }
});

describe('conditional headers', () => {
  const etag = '"abc"';
  it('If-None-Match matches weakly, in lists and with *', () => {
    expect(ifNoneMatchHits('"abc"', etag)).to.be.true;
    expect(ifNoneMatchHits('W/"abc"', etag)).to.be.true;
    expect(ifNoneMatchHits('"x", "abc"', etag)).to.be.true;
    expect(ifNoneMatchHits('*', etag)).to.be.true;
    expect(ifNoneMatchHits('"x"', etag)).to.be.false;
    expect(ifNoneMatchHits(undefined, etag)).to.be.false;
  });
  it('If-Range needs a strong match; a date never matches', () => {
    expect(ifRangeAllows(undefined, etag)).to.be.true;
    expect(ifRangeAllows('"abc"', etag)).to.be.true;
    expect(ifRangeAllows('W/"abc"', etag)).to.be.false;
    expect(ifRangeAllows('Wed, 21 Oct 2015 07:28:00 GMT', etag)).to.be.false;
  });
});
