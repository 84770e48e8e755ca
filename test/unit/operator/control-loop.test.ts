import { expect } from 'chai';
import { ConditionType } from '../../../operator/src/api/v1alpha1/conditions.ts';
import { contains } from '../../../operator/src/controller/contains.ts';
import { isSpecRejection } from '../../../operator/src/controller/errors.ts';
import { combine } from '../../../operator/src/controller/reconcile.ts';
import type { V1StatefulSet } from '@kubernetes/client-node';
import {
  computeStatus,
  statusPatch,
  type StatusInputs,
} from '../../../operator/src/controller/status.ts';
import { rbacRules, WATCHED } from '../../../operator/src/kube/access.ts';
import { blobCache } from './fixtures.ts';

const NOW = new Date('2026-01-01T00:00:00Z');
const condition = (status: ReturnType<typeof computeStatus>, type: string) =>
  status.conditions?.find((c) => c.type === type);

describe('control loop pieces (pure)', () => {
  it('combine phase results with the earliest requeue', () => {
    expect(combine([{}, { requeueAfterMs: 500 }, { requeueAfterMs: 100 }])).to.deep.equal({
      requeueAfterMs: 100,
    });
    expect(combine([{}, {}])).to.deep.equal({});
  });

  it('compare a live object with what the operator wants, ignoring what the server adds', () => {
    const desired = { spec: { ports: [{ port: 80 }], selector: { a: 'b' } } };
    expect(
      contains(
        {
          spec: {
            ports: [{ port: 80, protocol: 'TCP' }],
            selector: { a: 'b' },
            clusterIP: '10.0.0.1',
          },
        },
        desired,
      ),
    ).to.equal(true);
    expect(contains({ spec: { ports: [{ port: 81 }], selector: { a: 'b' } } }, desired)).to.equal(
      false,
    );
    expect(
      contains({ spec: { ports: [{ port: 80 }, { port: 81 }], selector: { a: 'b' } } }, desired),
    ).to.equal(false);
    expect(contains({ spec: { selector: { a: 'b' } } }, desired)).to.equal(false);
  });

  it('classify invalid and malformed objects as rejections of the spec', () => {
    expect([400, 422, 409, 500, 403, undefined].map(isSpecRejection)).to.deep.equal([
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
  });

  it('record a spec that cannot work as Ready=False, and an operation as Progressing', () => {
    const invalid = computeStatus(
      blobCache(),
      { deployment: null, shards: [], invalid: { reason: 'InvalidSpec', message: 'no good' } },
      NOW,
    );
    expect(condition(invalid, ConditionType.Ready)).to.include({
      status: 'False',
      reason: 'InvalidSpec',
      message: 'no good',
    });
    expect(condition(invalid, ConditionType.Progressing)).to.include({
      status: 'False',
      reason: 'InvalidSpec',
    });
    const scaling = computeStatus(
      blobCache(),
      {
        deployment: null,
        shards: [],
        operation: { type: 'ScaleIn', step: 'WaitForDrain', message: 'shard 3: busy' },
      },
      NOW,
    );
    expect(condition(scaling, ConditionType.Progressing)).to.include({
      status: 'True',
      reason: 'ScaleIn',
      message: 'shard 3: busy',
    });
    expect(scaling.operation?.step).to.equal('WaitForDrain');
    const missing = computeStatus(
      blobCache(),
      { deployment: null, shards: [], missingSecrets: ['s3'] },
      NOW,
    );
    expect(condition(missing, ConditionType.Ready)).to.include({
      status: 'False',
      reason: 'SecretMissing',
    });
  });

  it('report the Redis Cluster: slot coverage and zones as conditions, ready shards, a blocked move', () => {
    const ready: V1StatefulSet = { status: { replicas: 2, readyReplicas: 2 } };
    const inputs: StatusInputs = {
      deployment: { status: { readyReplicas: 2 } },
      shards: [ready, ready, ready],
    };
    const membership = {
      slotsCovered: { status: 'True' as const, reason: 'AllSlotsCovered', message: 'all' },
      zoneSpread: { status: 'False' as const, reason: 'MastersConcentrated', message: 'zone a' },
      shardsReady: 2,
      incarnation: 'i-1',
      slotsUncovered: 0,
      replicasInMasterZone: 0,
    };
    const serving = computeStatus(blobCache(), { ...inputs, membership }, NOW);
    expect(condition(serving, ConditionType.Ready)).to.include({ status: 'True' });
    expect(condition(serving, ConditionType.SlotsCovered)).to.include({
      status: 'True',
      reason: 'AllSlotsCovered',
    });
    expect(condition(serving, ConditionType.ZoneSpread)).to.include({
      status: 'False',
      reason: 'MastersConcentrated',
    });
    expect(serving.redis).to.include({
      readyShards: 2,
      desiredShards: 3,
      shards: '2/3',
      incarnation: 'i-1',
    });
    const uncovered = computeStatus(
      blobCache(),
      {
        ...inputs,
        membership: {
          ...membership,
          slotsCovered: { status: 'False', reason: 'SlotsUnassigned', message: '5 slots' },
        },
      },
      NOW,
    );
    expect(condition(uncovered, ConditionType.Ready)).to.include({
      status: 'False',
      reason: 'SlotsNotCovered',
      message: '5 slots',
    });
    const blocked = computeStatus(
      blobCache(),
      {
        ...inputs,
        operation: { type: 'ScaleIn', step: 'Blocked' },
        membership: { ...membership, blocked: { reason: 'TargetOutOfMemory', message: 'full' } },
      },
      NOW,
    );
    expect(condition(blocked, ConditionType.Progressing)).to.include({
      status: 'False',
      reason: 'TargetOutOfMemory',
    });
    // Without a membership report (the phase did not run), the last conditions stand.
    const kept = computeStatus(
      { ...blobCache(), status: serving },
      inputs,
      new Date('2026-01-01T00:01:00Z'),
    );
    expect(condition(kept, ConditionType.ZoneSpread)).to.deep.equal(
      condition(serving, ConditionType.ZoneSpread),
    );
    expect(kept.redis?.incarnation).to.equal('i-1');
  });

  it('write removed status fields as null in the merge patch', () => {
    expect(
      statusPatch({ url: 'u', operation: { type: 'ScaleIn', step: 'x' } }, { url: 'u' }),
    ).to.deep.equal({ url: 'u', operation: null });
    // Inside an object both have, too (a merge patch merges objects): a rerun's fresh progress.
    expect(
      statusPatch(
        { backfill: { phase: 'Failed', job: 'a', partitionsReporting: 1 }, conditions: [] },
        { backfill: { phase: 'Pending', job: 'b' }, conditions: [] },
      ),
    ).to.deep.equal({
      backfill: { phase: 'Pending', job: 'b', partitionsReporting: null },
      conditions: [],
    });
  });

  it('derive RBAC from what is watched and written: list+watch on every cached kind, leases only at home', () => {
    const { cluster, ownNamespace } = rbacRules();
    for (const { type } of WATCHED) {
      const rule = cluster.find((r) => r.resources.includes(type.plural));
      expect(rule?.verbs, type.plural).to.include.members(['list', 'watch']);
    }
    expect(cluster.find((r) => r.resources[0] === 'statefulsets')?.verbs).to.deep.equal([
      'create',
      'delete',
      'list',
      'patch',
      'watch',
    ]);
    expect(cluster.find((r) => r.resources[0] === 'blobcaches/status')?.verbs).to.deep.equal([
      'patch',
    ]);
    expect(cluster.some((r) => r.resources.includes('leases'))).to.equal(false);
    // Nodes are read one by one for their zone, never listed or watched.
    expect(cluster.find((r) => r.resources[0] === 'nodes')).to.deep.equal({
      apiGroups: [''],
      resources: ['nodes'],
      verbs: ['get'],
    });
    expect(ownNamespace).to.deep.equal([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        verbs: ['create', 'get', 'update'],
      },
    ]);
  });
});
