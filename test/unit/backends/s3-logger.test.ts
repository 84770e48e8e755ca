import { expect } from 'chai';
import { Writable } from 'node:stream';
import winston from 'winston';
import { s3SdkLogger } from '../../../dataplane/src/backends/s3-logger.ts';

/** A logger keeping each entry's level and message. */
function capturingLogger(): { logger: winston.Logger; entries: string[] } {
  const entries: string[] = [];
  const sink = new Writable({
    objectMode: true,
    write(entry: { level: string; message: string }, _encoding, done) {
      entries.push(`${entry.level} ${entry.message}`);
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    transports: [new winston.transports.Stream({ stream: sink })],
  });
  return { logger, entries };
}

const failed = (name: string, status: number) => ({
  clientName: 'S3Client',
  commandName: name === 'PreconditionFailed' ? 'PutObjectCommand' : 'GetObjectCommand',
  error: Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } }),
});

describe('the S3 client log', () => {
  it('logs answers that are not failures at debug, and failures as errors', () => {
    const { logger, entries } = capturingLogger();
    const sdk = s3SdkLogger(logger);
    sdk.error(failed('NoSuchKey', 404));
    sdk.error(failed('PreconditionFailed', 412));
    sdk.error(failed('InternalError', 500));
    expect(entries).to.deep.equal([
      'debug S3 answered that an object is not stored',
      'debug S3 holds the object already; the upload made only if absent was not',
      'error S3 request failed',
    ]);
  });
});
