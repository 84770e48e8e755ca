/**
 * Scenario 4: a Redis master restarted in place while S3 is unreachable. With S3 down,
 * uploads are still acknowledged in WriteBehind mode (on a master and a replica, with a
 * journal entry); then one master's container is killed and the kubelet restarts it in
 * the same Pod, with the same volume (its start script hands the slots to its replica
 * first). Once S3 is back, every acknowledged blob is readable whole and is in S3.
 */
import { expect } from 'chai';
import { eventually } from '../harness/eventually.ts';
import { missingFromS3, smallBlobCache, waitSettled } from './harness/blobcache.ts';
import { startBlobClient } from './harness/client.ts';
import { cluster } from './harness/cluster.ts';
import { Load, reportLoad, servedDamaged } from './harness/load.ts';
import { useOperator } from './harness/operator.ts';
import { log } from './harness/progress.ts';
import { clusterCheck, clusterNodes, redisHost, redisPlacement } from './harness/redis-view.ts';
import { killContainer, restartCount, useNamespace, waitPodReady } from './harness/scenario.ts';

const NAME = 'outage';

describe('A Redis master restarted in place while S3 is unreachable', function () {
  this.timeout(900_000);
  const namespace = useNamespace('restart-in-place');
  useOperator();
  let load: Load;
  let s3Down = false;

  before(async function () {
    this.timeout(600_000);
    await cluster().kubectl.apply(
      ...(await smallBlobCache(namespace.name, NAME, { shards: 3, httpReplicas: 2 })),
    );
    await waitSettled(namespace.name, NAME);
    await startBlobClient(namespace.name, 'inspector', NAME);
  });

  // Whatever happened, S3 comes back for the scenarios after this one.
  after(async () => {
    if (s3Down) await cluster().s3.resume();
  });

  it('acknowledges uploads with S3 down, before and after a master restarts in place', async () => {
    await cluster().s3.pause();
    s3Down = true;
    load = await Load.start(namespace.name, NAME);
    await load.waitAcknowledged(20, 'with S3 down');
    const host = redisHost(namespace.name, NAME);
    const placement = await redisPlacement(namespace.name, NAME);
    const master = (await clusterNodes(namespace.name, 'inspector', host)).find((node) =>
      node.flags.includes('master'),
    )!;
    const pod = placement.get(master.ip)!.pod;
    const restarts = await killContainer(namespace.name, pod, 'redis');
    log(`master restart: killed redis-server of ${pod}, a master, with S3 down`);
    await eventually(
      `${pod} to restart its container`,
      async () => (await restartCount(namespace.name, pod, 'redis')) > restarts,
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    await waitPodReady(namespace.name, pod);
    // Same Pod, same address, same volume: back under its old node id (kept in nodes.conf),
    // having handed its slots to its replica first (whether the operator then gave them back
    // to keep masters in separate zones is its business).
    const again = (await clusterNodes(namespace.name, 'inspector', host)).find(
      (node) => node.ip === master.ip,
    );
    expect(again?.id, `${pod} after its restart`).to.equal(master.id);
    await load.waitAcknowledged(20, 'after the master restarted');
    // Served from Redis alone: S3 is still down.
    expect(await load.unreadable(), 'acknowledged blobs not served whole').to.deep.equal([]);
  });

  it('has every acknowledged blob in S3 once S3 is back, and readable', async () => {
    await cluster().s3.resume();
    s3Down = false;
    await load.stop();
    const calls = await load.calls();
    reportLoad('master restart', calls);
    expect(calls.filter((call) => ![200, 201, 503].includes(call.status))).to.deep.equal([]);
    expect(servedDamaged(calls), 'damaged bytes served as complete').to.deep.equal([]);
    const acknowledged = await load.acknowledged();
    expect(await missingFromS3(`${namespace.name}-${NAME}`, acknowledged)).to.deep.equal([]);
    expect(await load.unreadable(), 'acknowledged blobs not served whole').to.deep.equal([]);
    await waitSettled(namespace.name, NAME);
    const check = await clusterCheck(namespace.name, 'inspector', redisHost(namespace.name, NAME));
    expect(check.ok, check.output).to.equal(true);
  });
});
