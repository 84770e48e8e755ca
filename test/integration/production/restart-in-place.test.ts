import { expect } from 'chai';
import calculateSlot from 'cluster-key-slot';
import { blobOf, md5 } from '../../harness/blobs.ts';
import { inParallel, servedBy, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;

describe('faults: a master restarted in place', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  after(async () => {
    await stack?.stop();
  });

  it('loses no blob acknowledged while S3 was down when a master is SIGKILLed and restarted within 300 ms with its nodes.conf', async () => {
    stack = await startProductionStack();
    const plane = await stack.spawn({ BLOBCACHE_UPLOAD_RETRY_MAX_MS: '2000' });
    await stack.s3.stop();
    const blobs = Array.from({ length: 60 }, (_, i) =>
      blobOf(i % 10 === 0 ? 3 * MiB + i : 30_000 + i * 101, 9_000 + i),
    );
    const statuses = await inParallel(
      blobs,
      8,
      async (blob) =>
        (await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob })).status,
    );
    expect(statuses.filter((status) => status !== 201)).to.deep.equal([]);

    const victim = stack.redis.masters()[0]!;
    const victimServes = servedBy(victim);
    const onVictim = blobs.filter((blob) => victimServes(calculateSlot(`bc:{${md5(blob)}}:m`)));
    // The shard being restarted holds acknowledged blobs that S3 does not have yet.
    expect(onVictim.length).to.be.greaterThan(5);

    const { restartedAfterMs } = await stack.redis.restartInPlace(victim);
    expect(restartedAfterMs).to.be.below(300);
    await stack.redis.waitHealthy();
    // It rejoined as a replica of the node that took its slots over, not as an empty master.
    expect(stack.redis.role(victim)).to.equal('slave');
    expect(stack.redis.masters()).to.have.length(3).and.not.include(victim);

    await stack.s3.start();
    await waitForDrain(plane.url);
    const checks = await inParallel(blobs, 8, async (blob) => {
      const key = md5(blob);
      const response = await fetch(`${plane.url}/v1/blobs/${key}`);
      const body = Buffer.from(await response.arrayBuffer());
      const inS3 = await stack.store.get(key);
      const s3Bytes = inS3 === null ? null : Buffer.concat(await inS3.stream.toArray());
      return response.status === 200 && body.equals(blob) && s3Bytes?.equals(blob) === true;
    });
    expect(checks.filter((ok) => !ok)).to.have.length(0);
    console.log(
      `      restarted ${restartedAfterMs} ms after the kill; ${onVictim.length} of ${blobs.length} acknowledged blobs were on its shard, all readable and in S3`,
    );
  });
});
