/**
 * Scenario 6: the operator Pod killed mid-scale. While `redis.shards` goes 3 → 5 under a
 * steady client load, the leading operator's process is killed with SIGKILL (no chance to
 * save anything or release its Lease) and its Pod deleted while slots are moving. Its
 * successor, a new Pod of the Deployment (a new identity), waits the Lease out, picks the
 * operation up from what status and the cluster say, and finishes it: five masters serving
 * every slot, nothing acknowledged lost.
 */
import { expect } from 'chai';
import { eventually } from '../harness/eventually.ts';
import {
  getBlobCache,
  missingFromS3,
  scaleShards,
  smallBlobCache,
  waitSettled,
  type BlobCacheObject,
} from './harness/blobcache.ts';
import { startBlobClient } from './harness/client.ts';
import { cluster } from './harness/cluster.ts';
import { Load, reportLoad, servedDamaged } from './harness/load.ts';
import { LEASE, RELEASE_NAMESPACE, useOperator, waitLeader } from './harness/operator.ts';
import { log, timed } from './harness/progress.ts';
import { clusterCheck, clusterNodes, redisHost } from './harness/redis-view.ts';
import { findContainer, useNamespace } from './harness/scenario.ts';

const NAME = 'resumed';

interface Operation {
  type: string;
  step: string;
}

const operationOf = (cache: BlobCacheObject) => cache.status?.operation as Operation | undefined;

describe('The operator killed in the middle of a scale-out', function () {
  this.timeout(900_000);
  const namespace = useNamespace('takeover');
  useOperator();
  let load: Load;

  before(async function () {
    this.timeout(600_000);
    await cluster().kubectl.apply(
      ...(await smallBlobCache(namespace.name, NAME, { shards: 3, httpReplicas: 2 })),
    );
    await timed('operator crash: cache settled', () => waitSettled(namespace.name, NAME));
    await startBlobClient(namespace.name, 'inspector', NAME);
    load = await Load.start(namespace.name, NAME);
    await load.waitAcknowledged(10, 'before scaling');
  });

  it('resumes and finishes the scale-out its killed predecessor started', async () => {
    const { kubectl } = cluster();
    await scaleShards(namespace.name, NAME, 5);
    // Slots are moving: the operation is recorded, past waiting for the new pods.
    const before = await eventually(
      'the scale-out to move slots',
      async () => {
        const operation = operationOf(await getBlobCache(namespace.name, NAME));
        // ScaleOut for a shard's first slots, Rebalance for the rest of its share.
        const moving = ['ScaleOut', 'Rebalance'].includes(operation?.type ?? '');
        return moving && operation?.step === 'MoveSlots' ? operation : null;
      },
      { timeoutMs: 240_000, intervalMs: 200 },
    );
    const leader = await waitLeader();
    const operator = await findContainer(RELEASE_NAMESPACE, leader, 'operator');
    // Its process SIGKILLed (no chance to save anything or release the Lease) and its Pod
    // deleted at once: a new Pod, a new identity, has to wait the Lease out and take over.
    await Promise.all([
      operator.stop(),
      kubectl.run([
        'delete',
        'pod',
        leader,
        '-n',
        RELEASE_NAMESPACE,
        '--grace-period=0',
        '--force',
        '--wait=false',
      ]),
    ]);
    const killedAt = Date.now();
    log(`operator crash: killed ${leader} and deleted its Pod at step ${before.step}`);
    const lease = await kubectl.json<{ spec: { holderIdentity?: string } }>([
      'get',
      'lease',
      LEASE,
      '-n',
      RELEASE_NAMESPACE,
    ]);
    expect(lease.spec.holderIdentity, 'the Lease after the kill (not released)').to.equal(leader);
    const successor = await waitLeader({ not: leader });
    log(
      `operator crash: ${successor} leads ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`,
    );
    expect(
      (await kubectl.run(['get', 'pods', '-n', RELEASE_NAMESPACE, '-o', 'name'])).split('\n'),
      'operator Pods',
    ).to.not.include(`pod/${leader}`);
    await timed('operator crash: scale-out finished by the successor', () =>
      waitSettled(namespace.name, NAME, 600_000),
    );
    const host = redisHost(namespace.name, NAME);
    const check = await clusterCheck(namespace.name, 'inspector', host);
    expect(check.ok, check.output).to.equal(true);
    const masters = (await clusterNodes(namespace.name, 'inspector', host)).filter((node) =>
      node.flags.includes('master'),
    );
    expect(masters.length).to.equal(5);
    for (const master of masters) expect(master.slots, master.ip).to.not.deep.equal([]);
    await load.waitAcknowledged(10, 'at 5 shards');
  });

  it('lost no acknowledged blob and served none damaged', async () => {
    await load.stop();
    const calls = await load.calls();
    reportLoad('operator crash', calls);
    expect(calls.filter((call) => ![200, 201, 503].includes(call.status))).to.deep.equal([]);
    expect(servedDamaged(calls), 'damaged bytes served as complete').to.deep.equal([]);
    expect(await load.unreadable(), 'acknowledged blobs not served whole').to.deep.equal([]);
    expect(
      await missingFromS3(`${namespace.name}-${NAME}`, await load.acknowledged()),
    ).to.deep.equal([]);
  });
});
