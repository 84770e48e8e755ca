import { expect } from 'chai';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { inParallel, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

describe('logging on the production tiers', function () {
  this.timeout(300_000);
  let stack: ProductionStack;
  let plane: SpawnedDataPlane;

  before(async () => {
    stack = await startProductionStack();
    plane = await stack.spawn({ BLOBCACHE_LOG_LEVEL: 'debug' });
  });
  after(async () => {
    await stack?.stop();
  });

  it('logs no error for 1,000 PUTs, 1,000 hits and 1,000 misses with healthy tiers', async () => {
    const blobs = Array.from({ length: 1000 }, (_, i) => blobOf(2_000 + i, 20_000 + i));
    const absent = Array.from({ length: 1000 }, (_, i) => md5(`never stored ${i}`));
    const puts = await inParallel(blobs, 16, async (blob) => {
      const response = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, {
        method: 'PUT',
        body: blob,
      });
      return response.status;
    });
    expect(puts.filter((status) => status !== 201)).to.deep.equal([]);
    const hits = await inParallel(blobs, 16, async (blob) => {
      const response = await fetch(`${plane.url}/v1/blobs/${md5(blob)}`);
      return response.status === 200 && Buffer.from(await response.arrayBuffer()).equals(blob);
    });
    expect(hits.filter((ok) => !ok)).to.deep.equal([]);
    const misses = await inParallel(absent, 16, async (key) => {
      const response = await fetch(`${plane.url}/v1/blobs/${key}`);
      await response.arrayBuffer();
      return response.status;
    });
    expect(misses.filter((status) => status !== 404)).to.deep.equal([]);
    const listed = await fetch(`${plane.url}/v1/blobs/missing`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(absent),
    });
    expect(await listed.json()).to.have.length(1000);
    await waitForDrain(plane.url);

    const errors = plane.logs.filter((line) => line.level === 'error');
    expect(errors, JSON.stringify(errors.slice(0, 3))).to.deep.equal([]);
    // A GET of a blob not stored is an ordinary answer: logged at debug, never as a warning.
    const notFound = plane.logs.filter((line) => line.code === 'blob-not-found');
    expect(notFound).to.have.length(1000);
    expect(notFound.filter((line) => line.level !== 'debug')).to.deep.equal([]);
    expect(plane.stderr()).to.equal('');
    // The S3 client's misses are there, at debug and readable: the reads of keys never
    // stored (uploads send no existence check first, docs/decisions/0082).
    const s3Misses = plane.logs.filter(
      (line) => line.message === 'S3 answered that an object is not stored',
    );
    expect(s3Misses.length).to.be.at.least(1000);
    expect(s3Misses[0]).to.include({ level: 'debug', status: 404 });
    expect(s3Misses[0])
      .to.have.property('command')
      .that.matches(/^(Head|Get)ObjectCommand$/);
    expect(JSON.stringify(plane.logs)).to.not.include('[object Object]');
  });
});
