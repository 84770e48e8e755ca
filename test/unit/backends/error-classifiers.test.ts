import { expect } from 'chai';
import { isS3Miss, isS3Unavailable } from '../../../dataplane/src/backends/s3-errors.ts';
import { toBlobcacheError } from '../../../dataplane/src/http/problem.ts';
import { isRedisOutOfMemory, isRetryableRedisError } from '../../../dataplane/src/redis/errors.ts';

const s3Error = (name: string, status?: number, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(name), {
    name,
    $metadata: status === undefined ? {} : { httpStatusCode: status },
    ...extra,
  });

describe('backend error classifiers', () => {
  const s3Cases: [string, unknown, boolean, boolean][] = [
    ['HeadObject 404', s3Error('NotFound', 404), true, false],
    ['GetObject NoSuchKey', s3Error('NoSuchKey', 404), true, false],
    ['missing bucket', s3Error('NoSuchBucket', 404), false, false],
    ['access denied', s3Error('AccessDenied', 403), false, false],
    ['server error', s3Error('InternalError', 500), false, true],
    ['throttled', s3Error('SlowDown', 503), false, true],
    [
      'connection refused',
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      false,
      true,
    ],
    ['timeout', s3Error('TimeoutError'), false, true],
    ['not an error', 'boom', false, false],
    ['null', null, false, false],
  ];
  for (const [name, error, miss, unavailable] of s3Cases) {
    it(`S3: ${name} → miss ${miss}, unavailable ${unavailable}`, () => {
      expect(isS3Miss(error)).to.equal(miss);
      expect(isS3Unavailable(error)).to.equal(unavailable);
    });
  }

  const redisCases: [string, boolean][] = [
    ['CLUSTERDOWN The cluster is down', true],
    ['MOVED 3999 127.0.0.1:6381', true],
    ['TRYAGAIN Multiple keys request during rehashing of slot', true],
    ['LOADING Redis is loading the dataset in memory', true],
    ["OOM command not allowed when used memory > 'maxmemory'.", true],
    ['Connection is closed.', true],
    ['Command aborted due to connection close', true],
    ['Too many Cluster redirections. Last error: MOVED', true],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', false],
    ['ERR unknown command', false],
  ];
  for (const [message, retryable] of redisCases) {
    it(`Redis: '${message}' → retryable ${retryable}`, () => {
      expect(isRetryableRedisError(new Error(message))).to.equal(retryable);
    });
  }

  it('tells a full Redis apart', () => {
    expect(isRedisOutOfMemory(new Error("OOM command not allowed when used memory > 'maxmemory'.")))
      .to.be.true;
    expect(isRedisOutOfMemory(new Error('CLUSTERDOWN'))).to.be.false;
  });

  it('answers passing tier trouble with 503 and anything else unknown with 500', () => {
    expect(toBlobcacheError(new Error('CLUSTERDOWN The cluster is down')).status).to.equal(503);
    expect(toBlobcacheError(s3Error('InternalError', 500)).status).to.equal(503);
    expect(toBlobcacheError(new Error('WRONGTYPE')).status).to.equal(500);
  });
});
