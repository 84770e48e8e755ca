import { expect } from 'chai';
import { slotCount, type ClusterNode } from '../../operator/src/redis/admin.ts';
import type { RedisPod } from '../../operator/src/redis/model.ts';
import type { SpawnedDataPlane } from '../harness/dataplane.ts';
import type { LoopbackRedis } from '../harness/loopback-redis.ts';
import { inParallel } from '../harness/production-helpers.ts';
import { getBlob, type Acknowledged } from './load.ts';
import type { TestOperator } from './test-operator.ts';

/** The cluster as one of its nodes sees it, each node named by its pod. */
export async function clusterView(
  operator: TestOperator,
): Promise<{ node: ClusterNode; pod: RedisPod }[]> {
  const pods = operator.loopback.records();
  const first = pods[0]!;
  const view = await operator.admin.clusterNodes({
    host: first.ip!,
    port: first.port,
    password: operator.loopback.password,
  });
  expect(view, `${first.name} answers`).to.not.equal(null);
  return view!.map((node) => {
    const pod = pods.find((candidate) => `${candidate.ip}:${candidate.port}` === node.address);
    expect(pod, `node ${node.id} at ${node.address} is one of the pods`).to.not.equal(undefined);
    return { node, pod: pod! };
  });
}

/** Redis's own checker: all slots covered, none open, every node agreeing. */
export async function expectCheckClean(loopback: LoopbackRedis): Promise<void> {
  const { clean, output } = await loopback.check();
  expect(clean, `redis-cli --cluster check:\n${output}`).to.equal(true);
}

/**
 * The zone rules: no master shares a zone with one of its replicas, and (with three zones
 * or more) no zone holds a majority of the masters. Also: every shard of the spec has one
 * master, serving slots, with the spec's replicas.
 */
export async function expectZoneRules(operator: TestOperator): Promise<void> {
  const view = await clusterView(operator);
  const masters = view.filter(
    ({ node }) => node.flags.includes('master') && slotCount(node.slots) > 0,
  );
  expect(masters.map(({ pod }) => pod.shard).sort()).to.deep.equal(
    Array.from({ length: operator.spec.shards }, (_, shard) => shard),
  );
  for (const master of masters) {
    const replicas = view.filter(({ node }) => node.masterId === master.node.id);
    expect(replicas, `replicas of ${master.pod.name}`).to.have.length(
      operator.spec.replicasPerShard,
    );
    for (const replica of replicas) {
      expect(replica.pod.shard, `${replica.pod.name} replicates its own shard`).to.equal(
        master.pod.shard,
      );
      expect(
        replica.pod.zone,
        `${replica.pod.name} and its master ${master.pod.name}`,
      ).to.not.equal(master.pod.zone);
    }
  }
  const perZone = new Map<string, number>();
  for (const { pod } of masters) perZone.set(pod.zone!, (perZone.get(pod.zone!) ?? 0) + 1);
  for (const [zone, count] of perZone)
    expect(count, `masters in zone ${zone}`).to.be.at.most(Math.floor(masters.length / 2));
}

/** Every blob comes back whole from the data plane. */
export async function expectServed(
  plane: SpawnedDataPlane,
  blobs: readonly Acknowledged[],
  what: string,
): Promise<void> {
  const results = await inParallel(blobs, 4, (blob) => getBlob(plane.url, blob));
  const bad = results.flatMap((result, index) =>
    result.intact ? [] : [`${blobs[index]!.md5}: ${result.status}`],
  );
  expect(bad, `${what}: blobs not served whole`).to.deep.equal([]);
}
