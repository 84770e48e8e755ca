import { expect } from 'chai';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopbackRedis } from '../harness/loopback-redis.ts';
import { expectCheckClean, expectZoneRules } from './checks.ts';
import { TestOperator } from './test-operator.ts';

/**
 * Every shard's first pod in zone a: masters taken by ordinal would put all three there
 * (a zone with a majority of the masters), so the planner must choose by zone.
 */
const ZONES_OF_SHARD = [
  ['a', 'b'],
  ['a', 'c'],
  ['a', 'b'],
];

describe('cluster membership: create', function () {
  this.timeout(120_000);
  let loopback: LoopbackRedis;
  let operator: TestOperator;

  before(async () => {
    loopback = await LoopbackRedis.create({
      dir: await mkdtemp(join(tmpdir(), 'blobcache-cluster-')),
      password: 'cluster-test',
      zoneOf: (shard, ordinal) => ZONES_OF_SHARD[shard]![ordinal],
    });
    operator = new TestOperator(loopback, {
      shards: 3,
      replicasPerShard: 1,
      resharding: 'Migrate',
    });
  });
  after(async () => {
    await operator?.close();
    await loopback?.stop();
  });

  it('creates 3 shards × 1 replica from empty pods, zones apart', async () => {
    for (let shard = 0; shard < 3; shard++) await loopback.addPods(shard, 2);
    const rounds = await operator.converge();
    const steps = rounds.flatMap((round) => (round.step === undefined ? [] : [round.step]));
    expect(steps).to.include.members(['Meet', 'AssignSlots', 'Replicate', 'SetIncarnation']);
    await expectCheckClean(loopback);
    await expectZoneRules(operator);
  });
});
