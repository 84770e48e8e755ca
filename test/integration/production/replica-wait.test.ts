import { expect } from 'chai';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { Journal } from '../../../dataplane/src/redis/journal.ts';
import { journalStream } from '../../../dataplane/src/redis/keys.ts';
import { eventually } from '../../harness/eventually.ts';
import { blobOf, md5 } from '../../harness/blobs.ts';
import { inParallel, servedBy } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

/** Calls of WAIT a Redis node has served, from INFO commandstats. */
function waitCalls(stack: ProductionStack, port: number): number {
  const line = stack.redis
    .info(port, 'commandstats')
    .split('\n')
    .find((candidate) => candidate.startsWith('cmdstat_wait:'));
  return Number(/calls=(\d+)/.exec(line ?? '')?.[1] ?? 0);
}

describe('uploads share the replica wait of their shard, and so do journal appends (docs/decisions/0081)', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  after(async () => {
    await stack?.stop();
  });

  it('acknowledges 48 concurrent uploads to one shard with fewer WAITs than uploads, and a master SIGKILLed right after the last answer loses none of them', async () => {
    stack = await startProductionStack();
    // One journal stream, on another shard: every WAIT the victim serves is a publish's,
    // every WAIT the journal's master serves an append's (they share them the same way).
    const plane = await stack.spawn({ BLOBCACHE_JOURNAL_PARTITIONS: '1' });
    // S3 down: what is acknowledged lives only in Redis, on the master and its replica.
    await stack.s3.stop();
    const journalSlot = calculateSlot(journalStream(0));
    const victim = stack.redis.masters().find((port) => !servedBy(port)(journalSlot))!;
    const victimServes = servedBy(victim);
    const onVictim = (blob: Buffer): boolean => victimServes(calculateSlot(`bc:{${md5(blob)}}:m`));
    const blobs: Buffer[] = [];
    for (let seed = 1; blobs.length < 48; seed++) {
      const blob = blobOf(4096, 70_000 + seed);
      if (onVictim(blob)) blobs.push(blob);
    }
    const journalMaster = stack.redis.masters().find((port) => servedBy(port)(journalSlot))!;
    const waitsBefore = waitCalls(stack, victim);
    const appendWaitsBefore = waitCalls(stack, journalMaster);
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
    const appendWaits = waitCalls(stack, journalMaster) - appendWaitsBefore;
    expect(appendWaits, 'WAITs for 48 journal appends').to.be.at.least(1).and.below(blobs.length);
    console.log(
      `      ${waits} WAITs on the shard's master, ${appendWaits} on the journal's, for ${blobs.length} uploads`,
    );

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

describe('a journal entry waits for a replica the slot map does not list yet', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  let staleMap: Cluster;
  after(async () => {
    staleMap?.disconnect();
    await stack?.stop();
  });

  it('sends WAIT to a master its client still maps alone once a new replica has attached', async () => {
    stack = await startProductionStack();
    // A client whose slot map refreshes only when told: what any client's map is for a few
    // seconds after a replica attaches (Redis lists a replica in CLUSTER SLOTS only once it
    // has replicated something, and clients refresh on a timer).
    staleMap = new Cluster(
      stack.redis.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { slotsRefreshInterval: 600_000 },
    );
    staleMap.on('error', () => undefined);
    const journal = new Journal({ redis: staleMap, partitions: 1, replicaWaitMs: 2_000 });
    await journal.ensureGroups();
    const slot = calculateSlot(journalStream(0));
    const master = stack.redis.masters().find((port) => servedBy(port)(slot))!;
    const replicaOf = (port: number) =>
      Number(/slave0:ip=[^,]+,port=(\d+)/.exec(stack.redis.info(port, 'replication'))?.[1]);
    const replica = replicaOf(master);
    expect(replica, 'the replica of the journal stream’s master').to.be.above(0);

    stack.redis.kill(replica);
    await eventually('the client to map the master alone', async () => {
      await new Promise<void>((resolve) => staleMap.refreshSlotsCache(() => resolve()));
      return staleMap.slots[slot]?.length === 1;
    });
    await stack.redis.replace(replica);
    await eventually('a replica attached and in sync', () =>
      Promise.resolve(/slave0:.*state=online/.test(stack.redis.info(master, 'replication'))),
    );
    expect(staleMap.slots[slot], 'the client’s map of the slot').to.have.length(1);

    const waitsBefore = waitCalls(stack, master);
    await journal.append(md5(blobOf(64, 1)), '1');
    expect(waitCalls(stack, master) - waitsBefore, 'WAITs for one append').to.equal(1);
  });
});
