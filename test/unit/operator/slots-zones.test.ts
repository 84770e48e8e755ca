import { expect } from 'chai';
import {
  blobKeys,
  INCARNATION_KEY as DATAPLANE_INCARNATION,
} from '../../../dataplane/src/redis/keys.ts';
import {
  CACHED_STATE,
  INCARNATION_KEY,
  MANIFEST_KEY,
} from '../../../operator/src/redis/blob-layout.ts';
import { parseClusterNodes } from '../../../operator/src/redis/cluster-nodes.ts';
import { parseInspection } from '../../../operator/src/redis/info.ts';
import { buildModel } from '../../../operator/src/redis/model.ts';
import { planOpenSlots } from '../../../operator/src/redis/open-slots.ts';
import { initialRanges, nextMove, quotas } from '../../../operator/src/redis/slots.ts';
import { placeMasters } from '../../../operator/src/redis/zones.ts';
import { healthy, idOf, reports, spec } from './cluster-fixtures.ts';

const range = (first: number, last: number) =>
  Array.from({ length: last - first + 1 }, (_, index) => first + index);

describe('slot plans (pure)', () => {
  it('spread 16384 slots evenly, the first shards taking one more', () => {
    expect(quotas(3)).to.deep.equal([5462, 5461, 5461]);
    expect(quotas(5).reduce((a, b) => a + b)).to.equal(16_384);
    expect(initialRanges(3)).to.deep.equal([
      [0, 5461],
      [5462, 10922],
      [10923, 16383],
    ]);
  });

  it('move the highest slots of the largest donor to the neediest shard, leaving shards first', () => {
    const owned = new Map([
      [0, range(0, 5461)],
      [1, range(5462, 10922)],
      [2, range(10923, 16383)],
    ]);
    expect(nextMove(owned, 3, 100)).to.equal(null);
    const out = nextMove(owned, 5, 100)!;
    expect(out).to.deep.include({ from: 0, to: 3 });
    expect(out.slots).to.deep.equal(range(5362, 5461));
    const scaleIn = new Map([...owned, [3, [7]]]);
    scaleIn.set(
      0,
      range(0, 5461).filter((slot) => slot !== 7),
    );
    expect(nextMove(scaleIn, 3, 100)).to.deep.equal({ from: 3, to: 0, slots: [7] });
    expect(nextMove(owned, 5, 100, (shard) => shard !== 3)).to.deep.include({ to: 4 });
  });
});

describe('master placement over zones (pure)', () => {
  const shard = (index: number, zones: string[], master?: number) => ({
    shard: index,
    pods: zones.map((zone, ordinal) => ({ name: `p${index}-${ordinal}`, zone })),
    ...(master === undefined ? {} : { master: `p${index}-${master}` }),
  });

  it('keeps a master apart from its replicas: of {a, a, b} only the b pod may lead', () => {
    const plan = placeMasters([shard(0, ['a', 'a', 'b'], 0)]);
    expect(plan.masters.get(0)).to.equal('p0-2');
    expect(plan.verdict).to.include({ status: 'False', reason: 'MasterBesideReplica' });
  });

  it('moves one master out of a zone holding a majority, and leaves a spread cluster alone', () => {
    const crowded = placeMasters([
      shard(0, ['b', 'a'], 0),
      shard(1, ['b', 'c'], 0),
      shard(2, ['c', 'a'], 0),
    ]);
    expect(crowded.verdict.reason).to.equal('MastersConcentrated');
    expect([...crowded.masters.values()]).to.deep.equal(['p0-1', 'p1-0', 'p2-0']);
    const spread = placeMasters([
      shard(0, ['a', 'b'], 0),
      shard(1, ['b', 'c'], 0),
      shard(2, ['c', 'a'], 0),
    ]);
    expect(spread.verdict).to.include({ status: 'True', reason: 'Spread' });
    expect([...spread.masters.values()]).to.deep.equal(['p0-0', 'p1-0', 'p2-0']);
  });

  it('says what cannot be fixed: pods of a shard in one zone, nodes without zones, one zone', () => {
    expect(placeMasters([shard(0, ['a', 'a'], 0), shard(1, ['b', 'c'], 0)]).verdict).to.include({
      status: 'False',
      reason: 'PodsColocated',
    });
    expect(
      placeMasters([{ shard: 0, pods: [{ name: 'x' }, { name: 'y', zone: 'a' }], master: 'x' }])
        .verdict,
    ).to.include({ status: 'Unknown', reason: 'ZonesUnknown' });
    expect(placeMasters([shard(0, ['a'], 0)]).verdict.reason).to.equal('SingleZone');
    expect(placeMasters([]).verdict).to.include({ status: 'Unknown', reason: 'NodesUnreachable' });
  });
});

describe('open slots (pure)', () => {
  const a = idOf({ shard: 0, ordinal: 0 });
  const b = idOf({ shard: 1, ordinal: 0 });
  const open = (changes: (nodes: ReturnType<typeof healthy>) => void) => {
    const nodes = healthy(3);
    changes(nodes);
    return planOpenSlots(buildModel(spec(3), reports(nodes)));
  };

  it('finishes a move forward from either marker, never by counting keys', () => {
    const both = open((nodes) => {
      nodes[0]!.migrating = [{ slot: 100, to: b }];
      nodes[2]!.importing = [{ slot: 100, from: a }];
    });
    expect(both.resume.map((move) => [move.source.id, move.target.id, move.slots])).to.deep.equal([
      [a, b, [100]],
    ]);
    const targetOnly = open((nodes) => {
      nodes[2]!.importing = [{ slot: 100, from: a }];
    });
    expect(targetOnly.resume.map((move) => move.target.id)).to.deep.equal([b]);
    const sourceOnly = open((nodes) => {
      nodes[0]!.migrating = [{ slot: 100, to: b }];
    });
    expect(sourceOnly.resume.map((move) => move.target.id)).to.deep.equal([b]);
  });

  it('lets the target claim a slot its source already gave away, and closes a move to nowhere', () => {
    const given = open((nodes) => {
      nodes[0]!.slots = [[101, 5461]];
      nodes[2]!.importing = [{ slot: 100, from: a }];
    });
    expect(given.claim.map((entry) => [entry.member.id, entry.slots])).to.deep.equal([[b, [100]]]);
    const nowhere = open((nodes) => {
      nodes[0]!.migrating = [{ slot: 100, to: 'gone'.padEnd(40, '0') }];
      nodes.push({
        shard: 9,
        ordinal: 0,
        id: 'gone'.padEnd(40, '0'),
        gone: true,
        down: true,
        seenAs: ['fail'],
      });
    });
    expect(nowhere.close.map((entry) => [entry.member.id, entry.slots])).to.deep.equal([
      [a, [100]],
    ]);
  });

  it('closes the marker a source kept after its target took the slot over, and nothing else', () => {
    const ended = open((nodes) => {
      nodes[0]!.slots = [[101, 5461]];
      nodes[0]!.migrating = [{ slot: 100, to: b }];
      nodes[2]!.slots = [
        [100, 100],
        [5462, 10922],
      ];
    });
    expect(ended.close.map((entry) => [entry.member.id, entry.slots])).to.deep.equal([[a, [100]]]);
    expect(ended.resume.length + ended.claim.length).to.equal(0);
  });

  it('waits when a node the move needs does not answer', () => {
    const waiting = open((nodes) => {
      nodes[0]!.migrating = [{ slot: 100, to: 'far'.padEnd(40, '0') }];
      nodes.push({ shard: 9, ordinal: 0, id: 'far'.padEnd(40, '0'), gone: true, down: true });
    });
    expect(waiting.waiting[0]).to.match(/does not answer/);
    expect(waiting.resume.length + waiting.close.length).to.equal(0);
  });
});

describe('reading Redis (pure)', () => {
  it('parse CLUSTER NODES of Redis 7.2, whose address carries shard-id after the hostname', () => {
    const [named, bare] = parseClusterNodes(
      [
        'aaa 10.0.0.1:6379@16379,c-redis-0-0.c-redis-0.ns.svc,shard-id=77 myself,master - 0 1700000000123 3 connected 0-5',
        'bbb 10.0.0.2:6379@16379,,shard-id=78 slave aaa 0 1700000000456 3 connected',
      ].join('\n'),
    );
    expect(named).to.include({
      hostname: 'c-redis-0-0.c-redis-0.ns.svc',
      address: '10.0.0.1:6379',
    });
    expect(bare!.hostname).to.equal(undefined);
    expect(bare).to.include({ masterId: 'aaa', pongReceivedMs: 1_700_000_000_456 });
  });

  it('parse INFO and CLUSTER INFO into what the planner needs', () => {
    const inspection = parseInspection({
      nodes: 'aaa 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383',
      clusterInfo: 'cluster_state:ok\r\ncluster_slots_assigned:16384\r\n',
      info: [
        '# Replication',
        'role:master',
        'connected_slaves:1',
        'slave0:ip=10.0.0.2,port=6379,state=online,offset=4242,lag=0',
        'master_repl_offset:4300',
        '# Memory',
        'used_memory:1048576',
        'maxmemory:2147483648',
      ].join('\r\n'),
      keys: 12,
    });
    expect(inspection).to.deep.include({
      clusterOk: true,
      role: 'master',
      replicationOffset: 4300,
      keys: 12,
      usedMemoryBytes: 1_048_576,
      maxMemoryBytes: 2_147_483_648,
    });
    expect(inspection.replicas).to.deep.equal([
      { address: '10.0.0.2:6379', online: true, offset: 4242 },
    ]);
  });

  it('know the data plane’s key layout: manifests, chunks and the incarnation key', () => {
    const md5 = '0123456789abcdef0123456789abcdef';
    expect(MANIFEST_KEY.exec(blobKeys.manifest(md5))?.[1]).to.equal(md5);
    expect(MANIFEST_KEY.test(blobKeys.chunk(md5, 'up', 0))).to.equal(false);
    // The drop script derives chunk names from the manifest's: the same as the data plane's.
    const manifest = blobKeys.manifest(md5);
    expect(`${manifest.slice(0, -1)}c:up:3`).to.equal(blobKeys.chunk(md5, 'up', 3));
    expect(INCARNATION_KEY).to.equal(DATAPLANE_INCARNATION);
    expect(CACHED_STATE).to.equal('cached');
  });
});
