import { expect } from 'chai';
import { longestFailedSpell, type LoadCall } from '../../e2e/harness/load.ts';

const call = (time: number, ended: number, status: number): LoadCall => ({
  time,
  ended,
  status,
  curlExit: 0,
  method: 'PUT',
  key: `k${time}`,
});

describe('e2e load: the longest spell of failed calls', () => {
  it('is 0 when every call was answered', () => {
    expect(longestFailedSpell([call(1, 1, 201), call(2, 3, 200)])).to.equal(0);
  });

  it('runs from the first failure to the end of the last one before an answered call', () => {
    const calls = [
      call(10, 10, 201),
      call(11, 12, 503),
      call(13, 16, 503),
      call(17, 17, 201),
      call(20, 21, 503),
    ];
    expect(longestFailedSpell(calls)).to.equal(5);
  });

  it('orders calls by their start, whatever order they were logged in', () => {
    const calls = [call(13, 19, 0), call(20, 20, 201), call(11, 12, 503)];
    expect(longestFailedSpell(calls)).to.equal(8);
  });
});
