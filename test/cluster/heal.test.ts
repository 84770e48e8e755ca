import calculateSlot from 'cluster-key-slot';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { slotCount } from '../../operator/src/redis/admin.ts';
import type { RedisPod } from '../../operator/src/redis/model.ts';
import { redisReadyCheck } from '../../operator/src/resources/redis.ts';
import type { SpawnedDataPlane } from '../harness/dataplane.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { inParallel } from '../harness/production-helpers.ts';
import { clusterView, expectCheckClean, expectServed, expectZoneRules } from './checks.ts';
import { putBlob, type Acknowledged } from './load.ts';
import { ClusterStack } from './stack.ts';

const MiB = 1024 * 1024;

/** Whether the Redis pods' readiness check passes on a node. */
async function ready(pod: RedisPod, password: string): Promise<boolean> {
  const check = spawn('sh', ['-c', redisReadyCheck({ host: pod.ip!, port: pod.port })], {
    env: { PATH: process.env.PATH ?? '', REDIS_PASSWORD: password },
    stdio: 'ignore',
  });
  return (await new Promise<number | null>((resolve) => check.once('exit', resolve))) === 0;
}

/** Open slot markers anywhere in the cluster, as every pod reports them. */
async function openSlots(stack: ClusterStack): Promise<number> {
  let open = 0;
  for (const pod of stack.redis.records()) {
    const view = await stack.operator.admin.clusterNodes({
      host: pod.ip!,
      port: pod.port,
      password: stack.redis.password,
    });
    const self = view?.find((node) => node.flags.includes('myself'));
    open += (self?.migrating.length ?? 0) + (self?.importing.length ?? 0);
  }
  return open;
}

/** The pod serving a blob's slot now. */
async function masterOf(stack: ClusterStack, md5: string): Promise<string> {
  const slot = calculateSlot(`bc:{${md5}}:m`);
  const master = (await clusterView(stack.operator)).find(
    ({ node }) =>
      node.flags.includes('master') && node.slots.some(([a, b]) => slot >= a && slot <= b),
  );
  return master!.pod.name;
}

/**
 * One cluster through a sequence of troubles, each leaving it clean for the next: a master
 * restarted in place, the operator killed mid-migration, a master replaced by an empty
 * node, replica counts up and down, and every node rescheduled at once.
 */
describe('cluster membership: heal', function () {
  this.timeout(300_000);
  let stack: ClusterStack;
  let plane: SpawnedDataPlane;
  const blobs: Acknowledged[] = [];

  before(async () => {
    stack = await ClusterStack.start({ shards: 3, replicasPerShard: 1, resharding: 'Migrate' });
    await stack.create();
    plane = await stack.dataPlane();
    await inParallel(
      Array.from({ length: 40 }, (_, i) => i),
      4,
      async (i) => {
        const { status, blob } = await putBlob(plane.url, 2 * MiB + i * 4_096, 500 + i);
        expect(status).to.equal(201);
        blobs.push(blob);
      },
    );
  });
  after(async () => {
    await stack?.stop();
  });
  afterEach(async () => {
    await expectCheckClean(stack.redis);
  });

  it('puts masters back in separate zones after a master restarted in place handed over', async () => {
    await expectZoneRules(stack.operator);
    const master = (await clusterView(stack.operator)).find(
      ({ node, pod }) => pod.shard === 0 && node.flags.includes('master'),
    )!.pod;
    // The start script hands the slots to the replica, in another zone, which then shares
    // a zone with another shard's master: zone b holds two of three masters.
    await stack.redis.restartInPlace(master.name);
    await eventually('the replica to take over', async () =>
      (await clusterView(stack.operator)).some(
        ({ node, pod }) =>
          pod.shard === 0 && pod.name !== master.name && node.flags.includes('master'),
      ),
    );
    const rounds = await stack.operator.converge();
    const failovers = rounds.filter((round) => round.step === 'Failover');
    expect(failovers, 'one failover back into a free zone').to.have.length(1);
    expect(failovers[0]!.operation).to.equal('ZoneBalance');
    await expectZoneRules(stack.operator);
    await expectServed(plane, blobs, 'after the restart');
  });

  it('resumes a migration after its operator process was killed mid-way, leaving no slot open', async () => {
    stack.operator.spec = { ...stack.operator.spec, shards: 4 };
    await stack.redis.addPods(3, 2);
    const config = join(stack.dir, 'operator.json');
    const statusFile = join(stack.dir, 'operator-status.json');
    await writeFile(
      config,
      JSON.stringify({
        spec: stack.operator.spec,
        pods: stack.redis.records(),
        password: stack.redis.password,
        nodeTimeoutMs: stack.redis.nodeTimeoutMs,
        statusFile,
      }),
    );
    const run = () => {
      const child = spawn(process.execPath, ['test/cluster/membership-process.ts', config], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const lines: Record<string, unknown>[] = [];
      const reader = createInterface({ input: child.stdout });
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { child, lines, reader, exited };
    };
    const first = run();
    await new Promise<void>((resolve, reject) => {
      first.reader.on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        first.lines.push(entry);
        // Keys are on their way: kill it now.
        if (entry.group === 'opened' && Number(entry.keys) > 0) {
          first.child.kill('SIGKILL');
          resolve();
        }
      });
      void first.exited.then(() =>
        reject(new Error('the operator process ended before moving keys')),
      );
    });
    await first.exited;
    expect(await openSlots(stack), 'slots left open by the kill').to.be.greaterThan(0);

    const second = run();
    second.reader.on('line', (line) =>
      second.lines.push(JSON.parse(line) as Record<string, unknown>),
    );
    expect(await second.exited, 'the new operator process finished').to.equal(0);
    expect(second.lines[0], 'it resumed the recorded operation').to.deep.include({
      resumed: { ...(second.lines[0]!.resumed as object), type: 'ScaleOut' },
    });
    expect(second.lines.some((line) => line.step === 'FinishOpenSlots')).to.equal(true);
    expect(await openSlots(stack)).to.equal(0);
    const rounds = await stack.operator.converge();
    expect(
      rounds.filter((round) => round.step !== undefined),
      'nothing left to do',
    ).to.deep.equal([]);
    await expectZoneRules(stack.operator);
    await expectServed(plane, blobs, 'after the resumed migration');
  });

  it('attaches a node that replaced a master, empty, as a replica of its shard; the shard keeps its blobs', async () => {
    // S3 down: whatever is served now comes from Redis.
    await stack.s3.stop();
    try {
      const victim = (await clusterView(stack.operator)).find(
        ({ node, pod }) => pod.shard === 1 && node.flags.includes('master'),
      )!.pod;
      const onShard: Acknowledged[] = [];
      for (const blob of blobs)
        if ((await masterOf(stack, blob.md5)) === victim.name) onShard.push(blob);
      expect(onShard.length, 'blobs on the shard').to.be.greaterThan(0);
      const replaced = await stack.redis.replace(victim.name);
      expect(await ready(replaced, stack.redis.password), 'an empty node is not ready').to.equal(
        false,
      );
      const rounds = await stack.operator.converge();
      expect(await ready(replaced, stack.redis.password), 'a replica in sync is ready').to.equal(
        true,
      );
      const steps = rounds.flatMap((round) => (round.step === undefined ? [] : [round.step]));
      expect(steps).to.include.members(['Forget', 'Meet', 'Replicate']);
      const view = await clusterView(stack.operator);
      const joined = view.find(({ pod }) => pod.name === victim.name)!;
      expect(joined.pod.ip).to.equal(replaced.ip);
      const master = view.find(({ node }) => node.id === joined.node.masterId)!;
      expect(master.pod.shard, 'a replica of its own shard').to.equal(1);
      expect(slotCount(master.node.slots)).to.be.greaterThan(0);
      await expectZoneRules(stack.operator);
      await expectServed(plane, onShard, 'the shard after its master was replaced (S3 down)');
    } finally {
      await stack.s3.start();
    }
  });

  it('follows the replica count of the spec, up and down', async () => {
    stack.operator.spec = { ...stack.operator.spec, replicasPerShard: 2 };
    for (let shard = 0; shard < 4; shard++) await stack.redis.addPods(shard, 1, 2);
    await stack.operator.converge();
    await expectZoneRules(stack.operator);
    stack.operator.spec = { ...stack.operator.spec, replicasPerShard: 1 };
    const rounds = await stack.operator.converge();
    expect(rounds.some((round) => round.step === 'RemoveNodes')).to.equal(true);
    for (let shard = 0; shard < 4; shard++) await stack.redis.deletePod(`cache-redis-${shard}-2`);
    await stack.operator.converge();
    await expectZoneRules(stack.operator);
  });

  it('gives the slots of a shard lost whole to its new, empty pods, and serves its blobs from S3 again', async () => {
    await eventually(
      'every blob to be in S3',
      async () => (await inParallel(blobs, 8, (blob) => stack.inS3(blob.md5))).every(Boolean),
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    // Master and replica of shard 2 gone at once (their node failed), rescheduled empty.
    await stack.redis.kill('cache-redis-2-0');
    await stack.redis.kill('cache-redis-2-1');
    await stack.redis.replace('cache-redis-2-0');
    await stack.redis.replace('cache-redis-2-1');
    const rounds = await stack.operator.converge();
    const steps = rounds.flatMap((round) => (round.step === undefined ? [] : [round.step]));
    expect(steps).to.include.members(['Forget', 'Meet', 'ClaimSlots', 'Replicate']);
    const shard2 = (await clusterView(stack.operator)).find(
      ({ node, pod }) => pod.shard === 2 && node.flags.includes('master'),
    )!;
    expect(slotCount(shard2.node.slots), 'shard 2 serves its share again').to.be.greaterThan(3_000);
    await expectZoneRules(stack.operator);
    await expectServed(plane, blobs, 'after shard 2 was lost whole');
  });

  it('brings the cluster back after every node was rescheduled at once, and serves every blob from S3 again', async () => {
    await eventually(
      'every blob to be in S3',
      async () => (await inParallel(blobs, 8, (blob) => stack.inS3(blob.md5))).every(Boolean),
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    const before = stack.operator.rounds.at(-1)!.outcome.incarnation;
    expect(before).to.be.a('string');
    await stack.redis.replaceAll();
    const rounds = await stack.operator.converge({ maxRounds: 40 });
    // Created anew from blank nodes: no stranger to reset, no step failing again and again.
    expect(rounds.filter((round) => round.error !== undefined)).to.deep.equal([]);
    expect(rounds.some((round) => round.step === 'Reset')).to.equal(false);
    expect(rounds.filter((round) => round.step === 'AssignSlots')).to.have.length(1);
    const after = stack.operator.rounds.at(-1)!.outcome.incarnation;
    expect(after, 'a new incarnation: the cache starts cold')
      .to.be.a('string')
      .and.not.equal(before);
    await expectZoneRules(stack.operator);
    // The old data plane knew the old addresses only (in Kubernetes its DNS names would
    // follow the pods); a new one, as after a node-pool upgrade, fills from S3.
    const fresh = await stack.dataPlane();
    await expectServed(fresh, blobs, 'after every node was rescheduled');
  });
});
