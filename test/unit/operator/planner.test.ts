import { expect } from 'chai';
import {
  removable,
  replicasBesideMaster,
  uncoveredSlots,
} from '../../../operator/src/redis/facts.ts';
import { failoverGraceMs } from '../../../operator/src/redis/heal.ts';
import { buildModel, instability } from '../../../operator/src/redis/model.ts';
import { plan, type PlanInput } from '../../../operator/src/redis/planner.ts';
import type { Step } from '../../../operator/src/redis/steps.ts';
import { healthy, idOf, podName, reports, spec, type FakeNode } from './cluster-fixtures.ts';

const NOW = 1_000_000;
const input = (nodes: FakeNode[], overrides: Partial<PlanInput> = {}): PlanInput => ({
  spec: spec(3),
  reports: reports(nodes),
  now: NOW,
  nodeTimeoutMs: 5_000,
  incarnation: 'known',
  ...overrides,
});
const stepOf = <K extends Step['kind']>(step: Step | null, kind: K): Extract<Step, { kind: K }> => {
  expect(step?.kind).to.equal(kind);
  return step as Extract<Step, { kind: K }>;
};
const names = (members: readonly { pod: { name: string } }[]) => members.map((m) => m.pod.name);
const blankPods = (shards: number, replicas = 1): FakeNode[] =>
  Array.from({ length: shards * (1 + replicas) }, (_, i) => ({
    shard: Math.floor(i / (1 + replicas)),
    ordinal: i % (1 + replicas),
    zone: ['a', 'b', 'c'][i % 3]!,
    blank: true,
  }));

describe('membership planner (pure)', () => {
  describe('creating a cluster', () => {
    it('waits for every pod of the spec, then introduces them, then assigns all slots', () => {
      const pods = blankPods(3);
      const waiting = plan(
        input(pods.map((pod, i) => (i === 5 ? { ...pod, pending: true } : pod))),
      );
      expect(waiting).to.include({ operation: 'Create', step: null });
      expect(waiting.waiting).to.match(/c-redis-2-1/);

      const meet = stepOf(plan(input(pods)).step, 'Meet');
      expect(meet.from.pod.name).to.equal(podName(0, 0));
      expect(meet.pods.map((pod) => pod.name)).to.have.length(5);

      const met = pods.map((pod) => ({ ...pod, blank: false }));
      const assigned = stepOf(plan(input(met)).step, 'AssignSlots');
      expect(assigned.assignments.map(({ ranges }) => ranges)).to.deep.equal([
        [[0, 5461]],
        [[5462, 10922]],
        [[10923, 16383]],
      ]);
      // One master per shard, in three different zones.
      const masters = assigned.assignments.map(({ member }) => member.pod);
      expect(masters.map((pod) => pod.shard)).to.deep.equal([0, 1, 2]);
      expect(new Set(masters.map((pod) => pod.zone)).size).to.equal(3);
    });

    it('never creates while a pod is terminating, and resets a pod left from another cluster', () => {
      const pods = blankPods(1);
      const terminating = plan(
        input([pods[0]!, { ...pods[1]!, terminating: true }], { spec: spec(1) }),
      );
      expect(terminating.step).to.equal(null);
      expect(terminating.waiting).to.match(/terminating|waiting for/);
      const withKeys = plan(input([pods[0]!, { ...pods[1]!, keys: 3 }], { spec: spec(1) }));
      expect(names(stepOf(withKeys.step, 'Reset').nodes)).to.deep.equal([podName(0, 1)]);
    });
  });

  describe('a cluster that exists', () => {
    it('does nothing when everything is as the spec asks', () => {
      const result = plan(input(healthy(3)));
      expect(result).to.include({ operation: null, step: null, waiting: null, shardsReady: 3 });
      expect(result.slotsCovered).to.include({ status: 'True', reason: 'AllSlotsCovered' });
      expect(result.zoneSpread).to.include({ status: 'True' });
    });

    it('records a new incarnation when the key is missing', () => {
      const result = plan(input(healthy(3), { incarnation: null }));
      expect(stepOf(result.step, 'SetIncarnation').owner.pod.shard).to.equal(1); // slot 5674
    });

    it('attaches a blank pod to its own shard: introduce first, then replicate', () => {
      const nodes = healthy(3);
      const replaced = nodes.map((node) =>
        node.shard === 1 && node.ordinal === 1
          ? { ...node, id: 'fresh'.padEnd(40, '0'), blank: true, master: undefined }
          : node,
      );
      const meet = stepOf(plan(input(replaced)).step, 'Meet');
      expect(meet.pods.map((pod) => pod.name)).to.deep.equal([podName(1, 1)]);
      const joined = replaced.map((node) => ({ ...node, blank: false }));
      const link = stepOf(plan(input(joined)).step, 'Replicate').links;
      expect(link.map(({ member, master }) => [member.pod.name, master.pod.name])).to.deep.equal([
        [podName(1, 1), podName(1, 0)],
      ]);
    });

    it('never gives the replica of a failed master an empty node as its new master', () => {
      // Shard 1's master died with its pod; the pod came back empty on another node and was
      // introduced. The replica holds the shard's data: it is promoted, never re-pointed.
      const nodes = healthy(3).map((node) =>
        node.shard === 1 && node.ordinal === 0
          ? { ...node, gone: true, down: true, seenAs: ['fail'], pongMs: NOW - 1_000 }
          : node,
      );
      const fresh: FakeNode = { shard: 1, ordinal: 0, id: 'fresh'.padEnd(40, '0'), zone: 'b' };
      // Only suspected yet (fail?): no rule acts on the master, and none re-points its replica.
      const suspected = nodes.map((node) =>
        node.gone === true ? { ...node, seenAs: ['fail?'] } : node,
      );
      const first = plan(input([...suspected, fresh]));
      expect(first.step).to.equal(null);
      expect(first.waiting).to.match(/fail\?/);
      const early = plan(input([...nodes, fresh]));
      expect(early.step).to.equal(null);
      expect(early.waiting).to.match(/waiting for its replica to take over/);
      const later = plan(input([...nodes, fresh], { now: NOW + failoverGraceMs(5_000) }));
      expect(stepOf(later.step, 'Failover').member.pod.name).to.equal(podName(1, 1));
    });

    it('re-points a replica that follows another shard’s master', () => {
      const nodes = healthy(3).map((node) =>
        node.shard === 2 && node.ordinal === 1
          ? { ...node, master: idOf({ shard: 0, ordinal: 0 }) }
          : node,
      );
      const links = stepOf(plan(input(nodes)).step, 'Replicate').links;
      expect(links.map(({ member, master }) => [member.pod.name, master.pod.name])).to.deep.equal([
        [podName(2, 1), podName(2, 0)],
      ]);
    });

    it('waits for a failed master’s replica to take over, then forces it, then takes over without a vote', () => {
      const failedAt = NOW - 1_000;
      const nodes = healthy(3).map((node) =>
        node.shard === 0 && node.ordinal === 0
          ? { ...node, down: true, seenAs: ['fail'], pongMs: failedAt }
          : node,
      );
      const early = plan(input(nodes));
      expect(early.step).to.equal(null);
      expect(early.waiting).to.match(/waiting for its replica to take over/);
      expect(early.slotsCovered).to.include({ status: 'False', reason: 'MasterFailed' });
      expect(uncoveredSlots(early.model), 'the failed master’s slots').to.equal(5_462);
      expect(uncoveredSlots(plan(input(healthy(3))).model)).to.equal(0);

      const later = NOW + failoverGraceMs(5_000);
      const forced = stepOf(plan(input(nodes, { now: later })).step, 'Failover');
      expect(forced).to.include({ mode: 'FORCE' });
      expect(forced.member.pod.name).to.equal(podName(0, 1));
      const asked = { pod: podName(0, 1), at: later, mode: 'FORCE' };
      expect(plan(input(nodes, { now: later + 1_000, failover: asked })).step).to.equal(null);
      const takeover = plan(input(nodes, { now: later + failoverGraceMs(5_000), failover: asked }));
      expect(stepOf(takeover.step, 'Failover')).to.include({ mode: 'TAKEOVER' });
    });

    it('forgets a whole shard that is gone, then gives its slots to the shard’s new pods', () => {
      const gone = healthy(3).map((node) =>
        node.shard === 2 ? { ...node, down: true, seenAs: ['fail'], pongMs: 1 } : node,
      );
      const forget = stepOf(plan(input(gone)).step, 'Forget');
      expect(forget.ids).to.deep.equal([idOf({ shard: 2, ordinal: 0 })]);
      // Forgotten, and the shard's pods came back blank and were introduced: the chosen
      // master of shard 2 claims the slots nobody serves.
      const back = healthy(3).map((node) =>
        node.shard === 2
          ? { ...node, id: `new${node.ordinal}`.padEnd(40, '0'), slots: [], master: undefined }
          : node,
      );
      const claim = stepOf(plan(input(back)).step, 'ClaimSlots');
      expect(claim.member.pod.shard).to.equal(2);
      expect(claim.ranges).to.deep.equal([[10923, 16383]]);
    });

    it('forgets failed nodes that own nothing, but not on their own replicas', () => {
      const ghost: FakeNode = {
        shard: 1,
        ordinal: 2,
        id: 'ghost'.padEnd(40, '0'),
        down: true,
        seenAs: ['fail'],
        pongMs: 1,
      };
      const nodes = [...healthy(3), ghost];
      const forget = stepOf(plan(input(nodes, { spec: spec(3) })).step, 'Forget');
      expect(forget.ids).to.deep.equal([idOf(ghost)]);
      expect(forget.on).to.have.length(6);
      // Seen failing only a moment ago: the cluster may still be deciding.
      const fresh = [...healthy(3), { ...ghost, pongMs: NOW - 1_000 }];
      expect(plan(input(fresh)).step?.kind).to.not.equal('Forget');
    });

    it('re-introduces members everyone lost track of after they moved', () => {
      const nodes = healthy(3);
      const moved = reports(nodes).map((report, index) => {
        if (index !== 0) return report;
        // Pod 0-0 got a new IP; the others still list it at the old one, failing.
        return { ...report, pod: { ...report.pod, ip: '10.9.9.9' } };
      });
      for (const report of moved.slice(1)) {
        const stale = report.inspection!.nodes.find((node) => node.id === idOf(nodes[0]!))!;
        stale.flags.push('fail?');
        stale.connected = false;
      }
      const meet = stepOf(plan(input(nodes, { reports: moved })).step, 'Meet');
      expect(meet.pods.map((pod) => [pod.name, pod.ip])).to.deep.equal([
        [podName(0, 0), '10.9.9.9'],
      ]);
    });

    it("re-introduces a zone's nodes the others forgot while it was away, known only to each other", () => {
      // Zone a came back: 0-0 (failed over to 0-1 meanwhile) and 2-1, both replicas now,
      // remember everyone; the others forgot them both while they were away.
      const nodes = healthy(3).map((node): FakeNode => {
        if (node.shard !== 0) return node;
        return node.ordinal === 0
          ? { shard: 0, ordinal: 0, zone: 'a', master: idOf({ shard: 0, ordinal: 1 }) }
          : { shard: 0, ordinal: 1, zone: 'b', slots: [[0, 5461]] };
      });
      const away = new Set([idOf({ shard: 0, ordinal: 0 }), idOf({ shard: 2, ordinal: 1 })]);
      const forgotten = reports(nodes).map((report) => {
        const id = report.inspection!.nodes.find((node) => node.flags.includes('myself'))!.id;
        if (away.has(id)) return report;
        const known = report.inspection!.nodes.filter((node) => !away.has(node.id));
        return { ...report, inspection: { ...report.inspection!, nodes: known } };
      });
      const meet = stepOf(plan(input(nodes, { reports: forgotten })).step, 'Meet');
      expect(
        away.has(idOf({ shard: meet.from.pod.shard, ordinal: meet.from.pod.ordinal })),
      ).to.equal(false);
      expect(meet.pods.map((pod) => pod.name).sort()).to.deep.equal([podName(0, 0), podName(2, 1)]);
    });
  });

  describe('scaling', () => {
    const five = () =>
      [
        ...healthy(3),
        { shard: 3, ordinal: 0, zone: 'a' },
        { shard: 3, ordinal: 1, zone: 'b', master: idOf({ shard: 3, ordinal: 0 }) },
        { shard: 4, ordinal: 0, zone: 'c' },
        { shard: 4, ordinal: 1, zone: 'a', master: idOf({ shard: 4, ordinal: 0 }) },
      ] satisfies FakeNode[];

    it('moves slots to new shards only once their replicas are attached, from the largest donor', () => {
      const unlinked = five().map((node) =>
        node.shard === 3 && node.ordinal === 1 ? { ...node, linkUp: false } : node,
      );
      const waiting = plan(input(unlinked, { spec: spec(5) }));
      expect(waiting.operation).to.equal('ScaleOut');
      const first = stepOf(waiting.step, 'MoveSlots');
      expect(first.target.pod.shard, 'shard 3 is not ready: shard 4 gets slots first').to.equal(4);
      const move = stepOf(plan(input(five(), { spec: spec(5) })).step, 'MoveSlots');
      expect(move).to.include({ drop: false });
      expect([move.source.pod.shard, move.target.pod.shard]).to.deep.equal([0, 3]);
      expect(move.slots).to.have.length(2_048);
      expect(move.slots.at(-1), "the donor's highest slots").to.equal(5_461);
    });

    it('drains leaving shards first when scaling in, keeping their replicas until they are empty', () => {
      const nodes = five()
        .filter((node) => node.shard !== 4)
        .map((node) => {
          if (node.shard === 3 && node.ordinal === 0)
            return { ...node, slots: [[0, 99]] as [number, number][] };
          if (node.shard === 0 && node.ordinal === 0)
            return { ...node, slots: [[100, 5461]] as [number, number][] };
          return node;
        });
      const result = plan(input(nodes, { spec: spec(3, 1, 'Drop') }));
      expect(result.operation).to.equal('ScaleIn');
      const move = stepOf(result.step, 'MoveSlots');
      expect([move.source.pod.shard, move.target.pod.shard, move.drop]).to.deep.equal([3, 0, true]);
      expect(move.slots).to.deep.equal(Array.from({ length: 100 }, (_, slot) => slot));
      expect(removable(buildModel(spec(3), reports(nodes)), 3)).to.include({ done: false });
      // Once both leaving shards own nothing, all their pods leave in one step.
      const removed = stepOf(plan(input(five(), { spec: spec(3) })).step, 'RemoveNodes');
      expect(names(removed.nodes).sort()).to.deep.equal([
        podName(3, 0),
        podName(3, 1),
        podName(4, 0),
        podName(4, 1),
      ]);
      expect(names(removed.on)).to.have.length(6);
    });

    it('lets a shard be deleted once its pods are out of the cluster', () => {
      const out = [
        ...healthy(3),
        { shard: 3, ordinal: 0, blank: true },
        { shard: 3, ordinal: 1, blank: true },
      ];
      const model = buildModel(spec(3), reports(out));
      expect(removable(model, 3)).to.deep.equal({
        done: true,
        reason: 'no slots and no cluster membership left',
      });
      expect(instability(model), 'blank pods of a shard scaled away do not count').to.equal(null);
      const listed = reports(out).map((report) =>
        report.pod.shard === 0 && report.pod.ordinal === 0
          ? {
              ...report,
              inspection: {
                ...report.inspection!,
                nodes: [
                  ...report.inspection!.nodes,
                  {
                    ...report.inspection!.nodes[0]!,
                    id: 'old'.padEnd(40, '0'),
                    address: '10.0.3.1:6379',
                    flags: ['master', 'noaddr'],
                  },
                ],
              },
            }
          : report,
      );
      expect(removable(buildModel(spec(3), listed), 3).reason).to.match(
        /still counts 10.0.3.1:6379/,
      );
    });
  });

  describe('zones', () => {
    it('fails over to the replica that puts masters back in separate zones', () => {
      // Shard 0's master restarted in place and came back as a replica: zone b now holds
      // the masters of shards 0 and 1.
      const nodes: FakeNode[] = [
        { shard: 0, ordinal: 0, zone: 'a', master: idOf({ shard: 0, ordinal: 1 }) },
        { shard: 0, ordinal: 1, zone: 'b', slots: [[0, 5461]] },
        { shard: 1, ordinal: 0, zone: 'b', slots: [[5462, 10922]] },
        { shard: 1, ordinal: 1, zone: 'c', master: idOf({ shard: 1, ordinal: 0 }) },
        { shard: 2, ordinal: 0, zone: 'c', slots: [[10923, 16383]] },
        { shard: 2, ordinal: 1, zone: 'a', master: idOf({ shard: 2, ordinal: 0 }) },
      ];
      const result = plan(input(nodes));
      expect(result.zoneSpread).to.include({ status: 'False', reason: 'MastersConcentrated' });
      expect(result.operation).to.equal('ZoneBalance');
      const failover = stepOf(result.step, 'Failover');
      expect(failover.mode).to.equal(undefined);
      expect(failover.member.pod.name).to.equal(podName(0, 0));
      const waiting = plan(input(nodes, { failover: { pod: podName(0, 0), at: NOW - 1_000 } }));
      expect(waiting.step).to.equal(null);
      expect(waiting.waiting).to.match(/take over/);
    });

    it('counts replicas that share their master’s zone', () => {
      const nodes = healthy(3).map((node) =>
        node.shard === 2 && node.ordinal === 1 ? { ...node, zone: 'c' } : node,
      );
      expect(replicasBesideMaster(plan(input(nodes)).model)).to.equal(1);
      expect(replicasBesideMaster(plan(input(healthy(3))).model)).to.equal(0);
    });

    it('never moves a master that breaks no rule (a restarted master stays a replica)', () => {
      const nodes: FakeNode[] = [
        { shard: 0, ordinal: 0, zone: 'a', master: idOf({ shard: 0, ordinal: 1 }) },
        { shard: 0, ordinal: 1, zone: 'b', slots: [[0, 5461]] },
        { shard: 1, ordinal: 0, zone: 'a', slots: [[5462, 10922]] },
        { shard: 1, ordinal: 1, zone: 'c', master: idOf({ shard: 1, ordinal: 0 }) },
        { shard: 2, ordinal: 0, zone: 'c', slots: [[10923, 16383]] },
        { shard: 2, ordinal: 1, zone: 'b', master: idOf({ shard: 2, ordinal: 0 }) },
      ];
      expect(plan(input(nodes))).to.include({ step: null, operation: null });
    });
  });
});
