import { expect } from 'chai';
import { Redis } from 'ioredis';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { slotCount } from '../../operator/src/redis/admin.ts';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import { clusterView, expectCheckClean } from './checks.ts';
import { spreadZones } from './stack.ts';
import { TestOperator } from './test-operator.ts';

const MiB = 1024 * 1024;

describe('cluster membership: a target without room', function () {
  this.timeout(300_000);
  let loopback: LoopbackRedis;
  let operator: TestOperator;

  before(async () => {
    loopback = await LoopbackRedis.create({
      dir: await mkdtemp(join(tmpdir(), 'blobcache-limits-')),
      password: 'limits',
      maxMemory: '64mb',
      zoneOf: spreadZones,
    });
    operator = new TestOperator(loopback, {
      shards: 2,
      replicasPerShard: 1,
      resharding: 'Migrate',
    });
  });
  after(async () => {
    await operator?.close();
    await loopback?.stop();
  });

  it('stops a scale-in that would not fit, says why, loses nothing, and finishes once there is room', async () => {
    await loopback.addPods(0, 2);
    await loopback.addPods(1, 2);
    await operator.converge();
    // 40 MiB in each shard that can never be evicted (no TTL: blobs not yet in S3).
    const masters = (await clusterView(operator)).filter(
      ({ node }) => node.flags.includes('master') && slotCount(node.slots) > 0,
    );
    const written: string[] = [];
    for (const { node, pod } of masters) {
      const client = new Redis({ host: pod.ip!, port: pod.port, password: 'limits' });
      const chunk = Buffer.alloc(MiB, pod.shard + 1);
      for (let i = 0; written.filter((key) => key.endsWith(`:${pod.shard}`)).length < 40; i++) {
        const key = `bc:{pending-${i}}:c:${pod.shard}`;
        const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
        if (!node.slots.some(([first, last]) => slot >= first && slot <= last)) continue;
        await client.set(key, chunk);
        written.push(key);
      }
      client.disconnect();
    }

    operator.spec = { ...operator.spec, shards: 1 };
    let blocked: { reason: string; message: string } | undefined;
    for (let round = 0; round < 200 && blocked === undefined; round++) {
      const outcome = await operator.round();
      blocked = outcome.blocked;
      if (blocked === undefined)
        await new Promise((resolve) => setTimeout(resolve, outcome.requeueAfterMs));
    }
    expect(blocked?.reason).to.equal('TargetOutOfMemory');
    expect(blocked?.message).to.match(/no room.*raise redis.maxMemory/);
    expect(operator.recorded).to.include({ type: 'ScaleIn', step: 'Blocked' });

    // Every key is still somewhere: on the source, or already on the target.
    const cluster = new Redis.Cluster(
      loopback.records().map((pod) => ({ host: pod.ip!, port: pod.port })),
      { redisOptions: { password: 'limits' } },
    );
    try {
      const present = await Promise.all(written.map((key) => cluster.exists(key)));
      expect(present.filter((found) => found === 0)).to.deep.equal([]);
    } finally {
      cluster.disconnect();
    }

    // Room is made (what raising maxMemory does): the move goes on and finishes.
    for (const pod of loopback.records())
      await loopback.cli(pod.name, 'CONFIG', 'SET', 'maxmemory', '256mb');
    await operator.converge();
    await loopback.deleteShard(1);
    await operator.converge();
    await expectCheckClean(loopback);
    const survivor = (await clusterView(operator)).find(
      ({ node }) => node.flags.includes('master') && slotCount(node.slots) > 0,
    )!;
    const client = new Redis({
      host: survivor.pod.ip!,
      port: survivor.pod.port,
      password: 'limits',
    });
    try {
      expect(await client.dbsize()).to.be.at.least(written.length);
    } finally {
      client.disconnect();
    }
  });
});
