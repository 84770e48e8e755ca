/**
 * Scenario 2: scaling under a steady client load. `kubectl scale` of the HTTP tier 2 → 4
 * → 2 and `redis.shards` 3 → 4 → 3 while a client Pod uploads and reads back blobs: no
 * acknowledged blob is lost or served damaged, and clients see nothing but brief 503s
 * (counted and reported).
 */
import { expect } from 'chai';
import { eventually } from '../harness/eventually.ts';
import { missingFromS3, scaleShards, smallBlobCache, waitSettled } from './harness/blobcache.ts';
import { startBlobClient } from './harness/client.ts';
import { cluster } from './harness/cluster.ts';
import {
  Load,
  longestFailedSpell,
  reportLoad,
  servedDamaged,
  type LoadCall,
} from './harness/load.ts';
import { useOperator } from './harness/operator.ts';
import { log, timed } from './harness/progress.ts';
import { clusterCheck, clusterNodes, redisHost } from './harness/redis-view.ts';
import { useNamespace, waitRolledOut } from './harness/scenario.ts';

const NAME = 'scaled';
/** "Brief": no client sees 503s for longer than this without an answered call between. */
const BRIEF_SECONDS = 10;

describe('Scaling the HTTP tier and the Redis shards under client load', function () {
  this.timeout(900_000);
  const namespace = useNamespace('scaling');
  useOperator();
  let load: Load;
  let calls: LoadCall[] = [];

  before(async function () {
    this.timeout(600_000);
    const { kubectl } = cluster();
    await kubectl.apply(
      ...(await smallBlobCache(namespace.name, NAME, { shards: 3, httpReplicas: 2 })),
    );
    await timed('scaling: cache settled', () => waitSettled(namespace.name, NAME));
    await startBlobClient(namespace.name, 'inspector', NAME);
    load = await Load.start(namespace.name, NAME);
    await load.waitAcknowledged(20, 'before scaling');
  });

  const kubectl = (...args: string[]) => cluster().kubectl.run(args);
  const shards = (count: number) => scaleShards(namespace.name, NAME, count);

  it('scales the HTTP tier 2 → 4 → 2 with kubectl scale', async () => {
    for (const replicas of [4, 2]) {
      await kubectl('scale', 'blobcache', NAME, '-n', namespace.name, `--replicas=${replicas}`);
      await waitRolledOut(namespace.name, `deployment/${NAME}-http`);
      // What `kubectl get blobcache` shows: ready HTTP pods, as many as asked.
      await eventually(
        `status to show ${replicas} ready HTTP pods`,
        async () => {
          const cache = await waitSettled(namespace.name, NAME);
          const http = cache.status?.http as { replicas: number; readyReplicas: number };
          return http.replicas === replicas && http.readyReplicas === replicas;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
      await load.waitAcknowledged(10, `at ${replicas} HTTP pods`);
    }
  });

  it('grows the Redis Cluster to 4 shards, moving slots to the new master', async () => {
    await shards(4);
    await timed('scaling: 3 → 4 shards', () => waitSettled(namespace.name, NAME, 600_000));
    await expectMasters(4);
    await load.waitAcknowledged(10, 'at 4 shards');
  });

  it('shrinks it back to 3 shards, draining the fourth before it goes', async () => {
    await shards(3);
    await timed('scaling: 4 → 3 shards', () => waitSettled(namespace.name, NAME, 600_000));
    await eventually(
      'the fourth shard StatefulSet to go',
      async () =>
        (await kubectl('get', 'statefulset', '-n', namespace.name, '-o', 'name')).trim().split('\n')
          .length === 3,
    );
    await expectMasters(3);
    await load.waitAcknowledged(10, 'at 3 shards');
  });

  it('lost no acknowledged blob and served none damaged; clients saw only brief 503s', async () => {
    await load.stop();
    calls = await load.calls();
    reportLoad('scaling', calls);
    const unexpected = calls.filter((call) => ![200, 201, 503].includes(call.status));
    expect(unexpected, 'calls answered other than 200, 201 or 503').to.deep.equal([]);
    const spell = longestFailedSpell(calls);
    log(`scaling: longest spell of 503s ${spell} s`);
    expect(spell, 'seconds of 503s in a row').to.be.at.most(BRIEF_SECONDS);
    expect(servedDamaged(calls), 'damaged bytes served as complete').to.deep.equal([]);
    expect(await load.unreadable(), 'acknowledged blobs not served whole').to.deep.equal([]);
    // WriteBehind: each acknowledged blob reaches S3 too.
    const acknowledged = await load.acknowledged();
    expect(acknowledged.length).to.be.greaterThan(40);
    expect(await missingFromS3(`${namespace.name}-${NAME}`, acknowledged)).to.deep.equal([]);
  });

  async function expectMasters(count: number): Promise<void> {
    const host = redisHost(namespace.name, NAME);
    const check = await clusterCheck(namespace.name, 'inspector', host);
    expect(check.ok, check.output).to.equal(true);
    const nodes = await clusterNodes(namespace.name, 'inspector', host);
    const masters = nodes.filter((node) => node.flags.includes('master'));
    expect(masters.length).to.equal(count);
    for (const master of masters) expect(master.slots, master.ip).to.not.deep.equal([]);
  }
});
