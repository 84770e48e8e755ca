/**
 * `node bench/slot-migration.ts`: how fast the operator moves slots full of multi-MiB blob
 * chunks between two masters (each with a replica), through the very code a scale-out runs
 * (moveSlots: IMPORTING/MIGRATING, MIGRATE batches, waiting for the target's replica, NODE),
 * for several MIGRATE batch sizes, with Redis's rdbcompression on and off. Redis pods on
 * loopback as in test:cluster. Writes bench/results/slot-migration-<date>.{json,md}.
 *
 * BENCH_MIB (default 256): data moved per run; BENCH_ROUNDS (default 2): runs per setting;
 * BENCH_SUFFIX: added to the results' file names (a second run the same day).
 * The machine's load average is recorded at start and end: on shared cores it explains more
 * of the spread than any setting does.
 */
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { slotCount } from '../operator/src/redis/admin.ts';
import { makeRedisAdmin } from '../operator/src/redis/ioredis-admin.ts';
import { DEFAULT_MOVE_OPTIONS, moveSlots, type MoveNode } from '../operator/src/redis/migrate.ts';
import { LoopbackRedis } from '../test/harness/loopback-redis.ts';
import { TestOperator } from '../test/cluster/test-operator.ts';

const MiB = 1024 * 1024;
const TOTAL_MIB = Number(process.env.BENCH_MIB ?? 256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SLOTS = 8;
const SUFFIX = process.env.BENCH_SUFFIX ?? '';
const loadAtStart = loadavg()[0]!;
const BATCHES = [1, 4, 8, 16];

const loopback = await LoopbackRedis.create({
  dir: await mkdtemp(join(tmpdir(), 'blobcache-bench-slots-')),
  password: 'bench',
  maxMemory: `${TOTAL_MIB * 3}mb`,
});
const admin = makeRedisAdmin({ timeoutMs: 5_000 });
interface Row {
  compression: string;
  batchMiB: number;
  /** Payload moved (the chunks' bytes; MEMORY USAGE counts allocator overhead on top). */
  mib: number;
  ms: number;
  mibPerS: number;
  longestMigrateMs: number;
}
const rows: Row[] = [];
try {
  await loopback.addPods(0, 2);
  await loopback.addPods(1, 2);
  const operator = new TestOperator(loopback, {
    shards: 2,
    replicasPerShard: 1,
    resharding: 'Migrate',
  });
  await operator.converge();
  await operator.close();
  const replicasOf = async (id: string) => {
    const first = loopback.records()[0]!;
    const view = await admin.clusterNodes({ host: first.ip!, port: first.port, password: 'bench' });
    return view!
      .filter((node) => node.masterId === id)
      .map((node) => {
        const [host, port] = node.address.split(':');
        return { host: host!, port: Number(port), password: 'bench' };
      });
  };
  const nodes = async () => {
    const first = loopback.records()[0]!;
    const view = (await admin.clusterNodes({
      host: first.ip!,
      port: first.port,
      password: 'bench',
    }))!;
    const masters = view.filter(
      (node) => node.flags.includes('master') && slotCount(node.slots) > 0,
    );
    return masters.map((node): MoveNode & { slots: [number, number][] } => {
      const [host, port] = node.address.split(':');
      return { host: host!, port: Number(port), password: 'bench', id: node.id, slots: node.slots };
    });
  };
  // 1 MiB chunks of random bytes in SLOTS slots of the first master (hash tags found by search).
  const [a] = await nodes();
  const owned = (slot: number) => a!.slots.some(([first, last]) => slot >= first && slot <= last);
  const client = new Redis({ host: a!.host, port: a!.port, password: 'bench' });
  const tags: string[] = [];
  for (let i = 0; tags.length < SLOTS; i++) {
    const tag = `bench-${i}`;
    const slot = Number(await client.call('CLUSTER', 'KEYSLOT', tag));
    if (owned(slot) && !tags.some((other) => other === tag)) tags.push(tag);
  }
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < TOTAL_MIB; i++) {
    randomFillSync(chunk);
    await client.set(`bc:{${tags[i % SLOTS]}}:c:bench:${i}`, chunk);
  }
  client.disconnect();
  const slots = await Promise.all(
    tags.map(async (tag) => {
      const probe = new Redis({ host: a!.host, port: a!.port, password: 'bench' });
      const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', tag));
      probe.disconnect();
      return slot;
    }),
  );
  for (const compression of ['no', 'yes']) {
    for (const pod of loopback.records())
      await loopback.cli(pod.name, 'CONFIG', 'SET', 'rdbcompression', compression);
    for (const batchMiB of BATCHES) {
      for (let round = 0; round < ROUNDS; round++) {
        // Back and forth: each run moves the slots from whichever master holds them.
        const [first, second] = await nodes();
        const holds = (node: { slots: [number, number][] }) =>
          node.slots.some(([low, high]) => slots[0]! >= low && slots[0]! <= high);
        const source = holds(first!) ? first! : second!;
        const target = source === first ? second! : first!;
        const result = await moveSlots(
          admin,
          {
            source,
            target,
            others: [],
            targetReplicas: await replicasOf(target.id),
            slots: [...slots].sort((x, y) => x - y),
            drop: false,
          },
          {
            ...DEFAULT_MOVE_OPTIONS,
            batchBytes: batchMiB * MiB,
            keysPerGroup: 1_000_000,
            deadline: Date.now() + 600_000,
          },
        );
        const row: Row = {
          compression,
          batchMiB,
          mib: TOTAL_MIB,
          ms: result.keysMs,
          mibPerS: TOTAL_MIB / (result.keysMs / 1000),
          longestMigrateMs: result.longestMigrateMs,
        };
        rows.push(row);
        console.log(JSON.stringify(row));
      }
    }
  }
} finally {
  await admin.close();
  await loopback.stop();
}

const date = new Date().toISOString().slice(0, 10);
const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
const machine = {
  cpus: cpus().length,
  model: cpus()[0]?.model ?? 'unknown',
  loadAverage: { start: loadAtStart, end: loadavg()[0]! },
};
const load = `load average ${machine.loadAverage.start.toFixed(1)} at start, ${machine.loadAverage.end.toFixed(1)} at end`;
writeFileSync(
  join(dir, `slot-migration-${date}${SUFFIX}.json`),
  `${JSON.stringify({ date, machine, rows }, null, 2)}\n`,
);
const table = [
  '| rdbcompression | MIGRATE batch | MiB moved | time | MiB/s | longest MIGRATE |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (row) =>
      `| ${row.compression} | ${row.batchMiB} MiB | ${row.mib} | ${row.ms} ms | ${row.mibPerS.toFixed(0)} | ${row.longestMigrateMs} ms |`,
  ),
].join('\n');
writeFileSync(
  join(dir, `slot-migration-${date}${SUFFIX}.md`),
  `# Slot migration, ${date}\n\n${machine.cpus} CPUs (${machine.model}, ${load}), loopback, 1 MiB chunks in ${SLOTS} slots, target with one replica (each batch waits for it).\n\n${table}\n`,
);
console.log(table);
