import { expect } from 'chai';
import calculateSlot from 'cluster-key-slot';
import type { ClusterNode, RedisAdmin } from '../../../operator/src/redis/admin.ts';
import {
  backfillProgressKey,
  INCARNATION_KEY,
  readBackfillState,
} from '../../../operator/src/redis/backfill-state.ts';

const SLOT = calculateSlot(INCARNATION_KEY);

function master(id: string, options: Partial<ClusterNode> = {}): ClusterNode {
  return {
    id,
    address: `10.0.0.${id}:6379`,
    flags: ['master'],
    masterId: null,
    configEpoch: 1,
    connected: true,
    slots: [[0, 16383]],
    migrating: [],
    importing: [],
    ...options,
  };
}

/** Answers CLUSTER NODES from `view` and GETs from `keys`, per node (pure logic: no Redis). */
function admin(
  view: ClusterNode[] | null,
  keys: Map<string, string>,
): RedisAdmin & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    clusterNodes: () => Promise.resolve(view),
    get: (node: { host: string }, key: string) => {
      asked.push(`${node.host} ${key}`);
      return Promise.resolve(keys.get(key) ?? null);
    },
  } as unknown as RedisAdmin & { asked: string[] };
}

const report = (partition: number, incarnation: string) =>
  JSON.stringify({ incarnation, partition, state: 'loading', bytes: 10, blobs: 1 });

describe('reading the incarnation and backfill progress from Redis', () => {
  const node = { host: '10.0.0.9', port: 6379 };

  it('asks the master of the slot, and keeps the reports of this incarnation only', async () => {
    const keys = new Map([
      [INCARNATION_KEY, 'inc-2'],
      [backfillProgressKey(0), report(0, 'inc-2')],
      [backfillProgressKey(1), report(1, 'inc-1')],
      [backfillProgressKey(2), 'not json'],
    ]);
    const redis = admin([master('1')], keys);
    const state = await readBackfillState(redis, [node], 3);
    expect(state.incarnation).to.equal('inc-2');
    expect(state.reports.map((found) => found.partition)).to.deep.equal([0]);
    expect(redis.asked.every((line) => line.startsWith('10.0.0.1 '))).to.be.true;
  });

  it('reads a cluster with no master for the slot as holding no data set', async () => {
    const state = await readBackfillState(
      admin([master('1', { slots: [] })], new Map()),
      [node],
      2,
    );
    expect(state).to.deep.equal({ incarnation: null, reports: [] });
  });

  it('reads nothing while the slot is on the move, or when no node answers', async () => {
    const moving = master('1', { migrating: [{ slot: SLOT, to: 'n2' }] });
    const keys = new Map([[INCARNATION_KEY, 'inc-1']]);
    expect(await readBackfillState(admin([moving], keys), [node], 1)).to.deep.equal({
      incarnation: undefined,
      reports: [],
    });
    expect(await readBackfillState(admin(null, keys), [node], 1)).to.deep.equal({
      incarnation: undefined,
      reports: [],
    });
  });
});
