import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { cluster } from './harness/cluster.ts';
import { clientPod, useNamespace, waitPodReady } from './harness/scenario.ts';
import { S3_REGION } from '../harness/services.ts';

describe("The harness's S3 server from inside a Pod", function () {
  this.timeout(180_000);
  const namespace = useNamespace('s3');
  const bucket = `e2e-${randomBytes(4).toString('hex')}`;
  let s3: S3Client;

  before(async function () {
    this.timeout(180_000);
    const { kubectl, s3: endpoint } = cluster();
    s3 = new S3Client({
      endpoint: endpoint.endpoint,
      region: S3_REGION,
      forcePathStyle: true,
      // Presigned URLs then carry no checksum of a body the SDK never sees.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
    });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await kubectl.apply(clientPod(namespace.name, 'client'));
    await waitPodReady(namespace.name, 'client');
  });

  after(() => s3.destroy());

  it('downloads an object the test stored, by a presigned URL', async () => {
    const body = randomBytes(32).toString('hex');
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'from-test', Body: body }));
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'from-test' }));
    const fetched = await cluster().kubectl.exec(namespace.name, 'client', [
      'curl',
      '--silent',
      '--show-error',
      '--fail',
      '--max-time',
      '10',
      url,
    ]);
    expect(fetched).to.equal(body);
  });

  it('uploads an object the test then reads from S3', async () => {
    const body = randomBytes(32).toString('hex');
    const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: 'from-pod' }));
    await cluster().kubectl.exec(namespace.name, 'client', [
      'sh',
      '-c',
      // From a file, so curl sends a Content-Length (S3 refuses chunked uploads without one).
      `printf %s '${body}' > /tmp/body && curl --silent --show-error --fail --max-time 10 -T /tmp/body '${url}'`,
    ]);
    const stored = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'from-pod' }));
    expect(await stored.Body?.transformToString()).to.equal(body);
  });
});
