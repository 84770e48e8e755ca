import { expect } from 'chai';
import calculateSlot from 'cluster-key-slot';
import { Redis } from 'ioredis';
import { CACHED_STATE } from '../../operator/src/redis/blob-layout.ts';
import type { Resharding } from '../../operator/src/redis/model.ts';
import { eventually } from '../harness/eventually.ts';
import { inParallel } from '../harness/production-helpers.ts';
import { clusterView, expectCheckClean, expectServed, expectZoneRules } from './checks.ts';
import { Load, putBlob, type Acknowledged, type LoadReport } from './load.ts';
import { ClusterStack } from './stack.ts';

const MiB = 1024 * 1024;
const progress = (what: string) =>
  console.log(`      … ${new Date().toISOString().slice(11, 19)} ${what}`);

/** What a 3 → 5 → 3 round trip measured, for the closing report. */
interface RoundTrip {
  mode: Resharding;
  /** When the load started (epoch ms). */
  startedAt: number;
  wallMs: number;
  scaleOutMs: number;
  scaleInMs: number;
  movedBytes: number;
  moveMs: number;
  keysMs: number;
  transferMs: number;
  longestMigrateMs: number;
  dropped: number;
  load: LoadReport;
  acknowledged: number;
}

/** What the slot moves of the rounds in [from, to) moved, and how long they took. */
function moved(stack: ClusterStack, from: number, to: number) {
  return stack.operator.rounds.slice(from, to).reduce(
    (sum, round) => {
      const result = round.outcome.executed?.outcome.moved;
      if (result === undefined) return sum;
      return {
        bytes: sum.bytes + result.bytes,
        ms: sum.ms + result.ms,
        keysMs: sum.keysMs + result.keysMs,
        transferMs: sum.transferMs + result.transferMs,
        longestMigrateMs: Math.max(sum.longestMigrateMs, result.longestMigrateMs),
        dropped: sum.dropped + result.dropped,
      };
    },
    { bytes: 0, ms: 0, keysMs: 0, transferMs: 0, longestMigrateMs: 0, dropped: 0 },
  );
}

/** The masters of the given shards, as the cluster sees them now. */
async function mastersOf(stack: ClusterStack, shards: readonly number[]) {
  return (await clusterView(stack.operator)).filter(
    ({ node, pod }) => node.flags.includes('master') && shards.includes(pod.shard),
  );
}

/** Whether this node serves the slot of the blob's keys. */
const serves = (node: { slots: [number, number][] }, blob: Acknowledged): boolean => {
  const slot = calculateSlot(`bc:{${blob.md5}}:m`);
  return node.slots.some(([a, b]) => slot >= a && slot <= b);
};

/** Those of the blobs whose slot a master of the given shards serves now. */
async function onShards(
  stack: ClusterStack,
  blobs: readonly Acknowledged[],
  shards: readonly number[],
): Promise<Acknowledged[]> {
  const masters = await mastersOf(stack, shards);
  return blobs.filter((blob) => masters.some(({ node }) => serves(node, blob)));
}

/**
 * Those of the blobs Redis holds as cached (S3 has them: Drop mode may drop them) on a master
 * of the given shards, read on the master itself.
 */
async function cachedOnShards(
  stack: ClusterStack,
  blobs: readonly Acknowledged[],
  shards: readonly number[],
): Promise<Acknowledged[]> {
  const cached: Acknowledged[] = [];
  for (const { node, pod } of await mastersOf(stack, shards)) {
    const mine = blobs.filter((blob) => serves(node, blob));
    if (mine.length === 0) continue;
    const client = new Redis({ host: pod.ip!, port: pod.port, password: stack.redis.password });
    try {
      for (const blob of mine)
        if ((await client.hget(`bc:{${blob.md5}}:m`, 'state')) === CACHED_STATE) cached.push(blob);
    } finally {
      client.disconnect();
    }
  }
  return cached;
}

/**
 * Create 3 shards, seed multi-MiB blobs, then 3 → 5 with S3 up and 5 → 3 with S3 down,
 * under steady PUT/GET load through a data plane in WriteBehind mode.
 */
async function roundTrip(mode: Resharding): Promise<RoundTrip> {
  const stack = await ClusterStack.start(
    { shards: 3, replicasPerShard: 1, resharding: mode },
    { maxMemory: '768mb' },
  );
  try {
    await stack.create();
    progress(`${mode}: created 3 × 1`);
    await expectCheckClean(stack.redis);
    const plane = await stack.dataPlane();
    // Data in the slots to move: 48 blobs of 2-4 MiB, in S3 (cached in Redis) by the time the
    // shards change.
    const seeded: Acknowledged[] = [];
    await inParallel(
      Array.from({ length: 48 }, (_, i) => i),
      4,
      async (i) => {
        const { status, blob } = await putBlob(
          plane.url,
          2 * MiB + ((i * 7919) % (2 * MiB)),
          1_000 + i,
        );
        expect(status).to.equal(201);
        seeded.push(blob);
      },
    );
    await eventually(
      'the seeded blobs to reach S3',
      async () => (await Promise.all(seeded.map((blob) => stack.inS3(blob.md5)))).every(Boolean),
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    progress('seeded 48 blobs, all in S3');
    const load = new Load(plane.url, {
      putEveryMs: 400,
      minBytes: 1 * MiB,
      maxBytes: 3 * MiB,
      maxPuts: 400,
      seed: 10_000,
    });
    const started = Date.now();
    load.start();
    // 3 → 5: the new shards' pods start, the operator moves slots to them.
    const outFrom = stack.operator.rounds.length;
    stack.operator.spec = { ...stack.operator.spec, shards: 5 };
    await stack.redis.addPods(3, 2);
    await stack.redis.addPods(4, 2);
    await stack.operator.converge({ timeoutMs: 240_000 });
    const scaleOutMs = Date.now() - started;
    progress(`scaled out to 5 in ${scaleOutMs} ms`);
    await expectCheckClean(stack.redis);
    await expectZoneRules(stack.operator);

    // Drop mode drops, in the leaving slots, only what Redis holds as cached; the scale-out
    // has just dropped the seeded blobs it moved, so read those back (each read fills Redis
    // again) until Redis holds some there, or the drop would have nothing to show.
    if (mode === 'Drop') {
      const onLeaving = await onShards(stack, seeded, [3, 4]);
      expect(onLeaving.length, 'seeded blobs in the slots that will leave').to.be.greaterThan(0);
      await eventually(
        'seeded blobs cached again in the leaving shards',
        async () => {
          await expectServed(plane, onLeaving, 'seeded blobs on the new shards');
          return (await cachedOnShards(stack, onLeaving, [3, 4])).length > 0;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
    }

    // 5 → 3 with S3 down: blobs acknowledged from now on stay pending in Redis, some of them
    // in the slots that leave.
    await stack.s3.stop();
    const pendingFrom = load.acknowledged.length;
    // What S3 had when it went down: only those may be dropped (Drop mode).
    const inS3Before = new Set(
      [...seeded, ...load.acknowledged]
        .filter((blob) => stack.storedInS3(blob.md5))
        .map((blob) => blob.md5),
    );
    // The point of the scenario: pending blobs in the slots that leave. Start the scale-in
    // once the load has put a few there.
    await eventually(
      'blobs acknowledged with S3 down in the leaving shards',
      async () =>
        (
          await onShards(
            stack,
            load.acknowledged.slice(pendingFrom).filter((blob) => !stack.storedInS3(blob.md5)),
            [3, 4],
          )
        ).length >= 3,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const inStarted = Date.now();
    const inFrom = stack.operator.rounds.length;
    stack.operator.spec = { ...stack.operator.spec, shards: 3 };
    await stack.operator.converge({ timeoutMs: 240_000 });
    // What the prune does once membership lets the shards go.
    for (const shard of [3, 4])
      expect(
        stack.operator.rounds.at(-1)!.outcome.removable(shard).done,
        `shard ${shard} drained`,
      ).to.equal(true);
    await stack.redis.deleteShard(3);
    await stack.redis.deleteShard(4);
    const scaleInMs = Date.now() - inStarted;
    progress(`scaled in to 3 in ${scaleInMs} ms (S3 down)`);
    const report = await load.stop();
    const wallMs = Date.now() - started;
    await expectCheckClean(stack.redis);
    await expectZoneRules(stack.operator);

    // With S3 still down, every blob acknowledged during the outage is served (from Redis):
    // pending blobs moved with their slots, in both modes.
    const pending = load.acknowledged.slice(pendingFrom);
    expect(pending.length, 'blobs acknowledged while S3 was down').to.be.greaterThan(5);
    await expectServed(plane, pending, 'pending blobs after the scale-in');
    if (mode === 'Migrate')
      await expectServed(plane, [...seeded, ...load.acknowledged], 'every blob, S3 down');

    // S3 back: every acknowledged blob reaches it, and every one is served.
    await stack.s3.start();
    progress('S3 back');
    const all = [...seeded, ...load.acknowledged];
    await eventually(
      'every acknowledged blob to be in S3',
      async () => {
        const present = await inParallel(all, 8, (blob) => stack.inS3(blob.md5));
        return present.every(Boolean);
      },
      { timeoutMs: 180_000, intervalMs: 1_000 },
    );
    await expectServed(plane, all, 'every blob after S3 returned');
    expect(report.corrupt, 'corrupt GETs').to.equal(0);

    // Should a check below fail: what the data plane warned of, to tell why a request failed.
    const warnings = plane.logs
      .filter((entry) => entry.level === 'warn' || entry.level === 'error')
      .slice(-40)
      .map((entry) => JSON.stringify(entry))
      .join('\n');
    // What clients saw: no upload ever failed; in Migrate mode nothing failed at all; in
    // Drop mode only reads of blobs S3 had (dropped while S3 was down) could fail.
    const puts = [...report.failures.keys()].filter((key) => key.startsWith('PUT'));
    expect(puts, `failed uploads; the data plane's last warnings:\n${warnings}\n`).to.deep.equal(
      [],
    );
    if (mode === 'Migrate')
      expect(
        Object.fromEntries(report.failures),
        `failed requests; the data plane's last warnings:\n${warnings}\n`,
      ).to.deep.equal({});
    expect(
      [...report.unavailable].filter((md5) => !inS3Before.has(md5)),
      'unavailable blobs S3 lacked',
    ).to.deep.equal([]);
    const out = moved(stack, outFrom, inFrom);
    const inn = moved(stack, inFrom, stack.operator.rounds.length);
    if (mode === 'Drop') expect(inn.dropped, 'blobs dropped instead of moved').to.be.greaterThan(0);
    return {
      mode,
      startedAt: started,
      wallMs,
      scaleOutMs,
      scaleInMs,
      movedBytes: out.bytes + inn.bytes,
      moveMs: out.ms + inn.ms,
      keysMs: out.keysMs + inn.keysMs,
      transferMs: out.transferMs + inn.transferMs,
      longestMigrateMs: Math.max(out.longestMigrateMs, inn.longestMigrateMs),
      dropped: inn.dropped,
      load: report,
      acknowledged: all.length,
    };
  } finally {
    await stack.stop();
  }
}

function print(trip: RoundTrip): void {
  const mib = trip.movedBytes / MiB;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const rate = (ms: number) => `${(mib / (ms / 1000)).toFixed(0)} MiB/s`;
  const failures = [...trip.load.failures].map(([what, count]) => `${count} × ${what}`);
  console.log(
    `      ${trip.mode}: 3→5→3 in ${s(trip.wallMs)} (out ${s(trip.scaleOutMs)}, in ${s(trip.scaleInMs)}); ` +
      `moved ${mib.toFixed(0)} MiB: ${rate(trip.moveMs)} over the moves (${s(trip.moveMs)}), ` +
      `${rate(trip.keysMs)} with slots open (${s(trip.keysMs)}), ` +
      `${rate(trip.transferMs)} in MIGRATE and replica catch-up (${s(trip.transferMs)}), longest MIGRATE ${trip.longestMigrateMs} ms` +
      (trip.dropped > 0 ? `; dropped ${trip.dropped} blobs S3 had` : '') +
      `; load: ${trip.load.puts} PUTs, ${trip.load.gets} GETs, failures: ${failures.join(', ') || 'none'}, ` +
      `longest gap ${trip.load.longestGapMs} ms (ended ${s(trip.load.longestGapEndedAt - trip.startedAt)} into the round trip); ` +
      `${trip.acknowledged} blobs acknowledged`,
  );
}

describe('cluster membership: scale 3 → 5 → 3 under load, S3 down during the scale-in', function () {
  this.timeout(600_000);

  for (const mode of ['Migrate', 'Drop'] as const) {
    it(`loses no acknowledged blob in ${mode} mode, and Redis's checker agrees at each end`, async () => {
      print(await roundTrip(mode));
    });
  }
});
