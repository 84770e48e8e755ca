import { expect } from 'chai';
import calculateSlot from 'cluster-key-slot';
import { blobOf, md5 } from '../../harness/blobs.ts';
import { inParallel, slotsOf } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

/** Calls of WAIT a Redis node has served, from INFO commandstats. */
function waitCalls(stack: ProductionStack, port: number): number {
  const line = stack.redis
    .info(port, 'commandstats')
    .split('\n')
    .find((candidate) => candidate.startsWith('cmdstat_wait:'));
  return Number(/calls=(\d+)/.exec(line ?? '')?.[1] ?? 0);
}

describe('uploads share the replica wait of their shard (docs/decisions/0081)', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  after(async () => {
    await stack?.stop();
  });

  it('acknowledges 48 concurrent uploads to one shard with fewer WAITs than uploads, and a master SIGKILLed right after the last answer loses none of them', async () => {
    stack = await startProductionStack();
    const plane = await stack.spawn();
    // S3 down: what is acknowledged lives only in Redis, on the master and its replica.
    await stack.s3.stop();
    const victim = stack.redis.masters()[0]!;
    const ranges = slotsOf(victim);
    const onVictim = (blob: Buffer): boolean => {
      const slot = calculateSlot(`bc:{${md5(blob)}}:m`);
      return ranges.some(([from, to]) => slot >= from && slot <= to);
    };
    const blobs: Buffer[] = [];
    for (let seed = 1; blobs.length < 48; seed++) {
      const blob = blobOf(4096, 70_000 + seed);
      if (onVictim(blob)) blobs.push(blob);
    }
    const waitsBefore = waitCalls(stack, victim);
    const statuses = await inParallel(
      blobs,
      48,
      async (blob) =>
        (await fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob })).status,
    );
    expect(statuses.filter((status) => status !== 201)).to.deep.equal([]);
    const waits = waitCalls(stack, victim) - waitsBefore;
    // Killed at once (the count above takes a few milliseconds): the replica must already
    // hold every acknowledged blob.
    stack.redis.kill(victim);
    expect(waits, 'WAITs for 48 uploads').to.be.at.least(1).and.below(blobs.length);
    console.log(`      ${waits} WAITs on the shard's master for ${blobs.length} uploads`);

    await stack.redis.waitHealthy();
    expect(stack.redis.masters()).not.to.include(victim);
    // A fresh process: nothing in its hot tier, S3 down, so every byte comes from Redis.
    const reader = await stack.spawn();
    const missing: string[] = [];
    await inParallel(blobs, 8, async (blob) => {
      const response = await fetch(`${reader.url}/v1/blobs/${md5(blob)}`);
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200 || !body.equals(blob))
        missing.push(`${md5(blob)} ${response.status}`);
    });
    expect(missing).to.deep.equal([]);
  });
});
