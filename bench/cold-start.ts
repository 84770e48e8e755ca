/**
 * `npm run bench:cold-start`: what a cold cache costs, measured side by side in one run on
 * loopback (Redis Cluster + versitygw, data planes from the compiled build, readers and the
 * S3 reference in processes of their own):
 *
 * - time to first and last byte of a cold 64 MiB blob through the cache, against reading it
 *   straight from S3 (a presigned GET);
 * - 100 concurrent readers of a cold 64 MiB blob over 3 data-plane processes: median time to
 *   first byte against time to last byte (readers stream behind the one fill);
 * - the backfill command's throughput on 200 blobs of mixed sizes, against reading the same
 *   bytes straight from S3 with the AWS SDK at the same parallelism (goal: at least 0.8 ×),
 *   and against storing the same bytes in the Redis Cluster alone (MD5 and the chunk
 *   writer, nothing read: the ceiling of any backfill on the machine).
 *
 * Writes bench/results/cold-start-<date>-<machine>.{json,md} and cold-start-latest.md (or
 * into BENCH_OUT, a folder outside the repository, for smoke runs). BENCH_ROUNDS (default
 * 3) repeats each comparison; BENCH_ONLY (comma separated: single, storm, backfill) runs
 * fewer sections; BENCH_CPU_PROF, a folder, runs the backfill command with `--cpu-prof`
 * writing its profiles there (`node bench/profile-top.ts FILE` summarises one);
 * BENCH_BACKFILL_NODE_FLAGS replaces the backfill's node flags (default, as its entry
 * point: `--max-semi-space-size=2`).
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { md5 } from '../test/harness/blobs.ts';
import { cpuMeter } from './cpu-time.ts';
import { REPO_ROOT } from '../test/harness/dataplane.ts';
import { flushRedis } from '../test/harness/production-helpers.ts';
import { BUCKET, s3Client, startProductionStack } from '../test/harness/production.ts';
import type { ReaderTiming } from './cold-readers.ts';
import { run } from './load.ts';

const MiB = 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARALLELISM = 4;
const SECTIONS = process.env.BENCH_ONLY?.split(',') ?? ['single', 'storm', 'backfill'];
const OUT = process.env.BENCH_OUT ?? join(import.meta.dirname, 'results');
const CPU_PROF = process.env.BENCH_CPU_PROF;

function log(message: string): void {
  process.stderr.write(`[bench:cold-start] ${message}\n`);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function readers(urls: string[]): Promise<ReaderTiming[]> {
  const out = await run(process.execPath, [
    join(import.meta.dirname, 'cold-readers.ts'),
    JSON.stringify(urls),
  ]);
  return JSON.parse(out) as ReaderTiming[];
}

type Stack = Awaited<ReturnType<typeof startProductionStack>>;

async function coldBlob(stack: Stack, seed: number): Promise<{ key: string; blob: Buffer }> {
  const blob = randomFillSync(Buffer.allocUnsafe(64 * MiB));
  blob.writeUInt32LE(seed, 0);
  const key = md5(blob);
  await stack.store.put(Readable.from([blob], { objectMode: false }), { key });
  return { key, blob };
}

async function main(): Promise<void> {
  const stack = await startProductionStack({ maxMemory: '3gb' });
  // Straight to S3 (the counting proxy is for tests): the planes and the reference alike.
  const direct = { BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint, BLOBCACHE_MAX_BLOB_BYTES: '1Gi' };
  const readersRun = SECTIONS.includes('single') || SECTIONS.includes('storm');
  const planes = readersRun
    ? await Promise.all([0, 1, 2].map(() => stack.spawn(direct, { compiled: true })))
    : [];
  const s3 = s3Client(stack.s3.endpoint);
  const signed = (key: string) =>
    getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key) }), {
      expiresIn: 3600,
    });
  const results: Record<string, unknown> = {};
  try {
    const single: { cache: ReaderTiming; s3: ReaderTiming }[] = [];
    for (let round = 0; SECTIONS.includes('single') && round < ROUNDS; round++) {
      const { key } = await coldBlob(stack, round);
      const [viaS3] = await readers([await signed(key)]);
      const [viaCache] = await readers([`${planes[0]!.url}/v1/blobs/${key}`]);
      if (viaCache!.md5 !== key || viaS3!.md5 !== key) throw new Error('A read came back wrong');
      single.push({ cache: viaCache!, s3: viaS3! });
      log(
        `cold 64 MiB: cache first byte ${viaCache!.firstByteMs.toFixed(1)} ms, last ${viaCache!.lastByteMs.toFixed(0)} ms; S3 ${viaS3!.firstByteMs.toFixed(1)} / ${viaS3!.lastByteMs.toFixed(0)} ms`,
      );
    }
    results.single = single;

    const storms: {
      medianFirstMs: number;
      p90FirstMs: number;
      maxFirstMs: number;
      medianLastMs: number;
      maxLastMs: number;
      correct: number;
    }[] = [];
    for (let round = 0; SECTIONS.includes('storm') && round < ROUNDS; round++) {
      const { key } = await coldBlob(stack, 100 + round);
      const timings = await readers(
        Array.from({ length: 100 }, (_, i) => `${planes[i % 3]!.url}/v1/blobs/${key}`),
      );
      const first = timings.map((timing) => timing.firstByteMs);
      const last = timings.map((timing) => timing.lastByteMs);
      const storm = {
        medianFirstMs: quantile(first, 0.5),
        p90FirstMs: quantile(first, 0.9),
        maxFirstMs: Math.max(...first),
        medianLastMs: quantile(last, 0.5),
        maxLastMs: Math.max(...last),
        correct: timings.filter((timing) => timing.md5 === key && timing.status === 200).length,
      };
      storms.push(storm);
      log(
        `storm: median first byte ${storm.medianFirstMs.toFixed(0)} ms (p90 ${storm.p90FirstMs.toFixed(0)}), median last byte ${storm.medianLastMs.toFixed(0)} ms, ${storm.correct}/100 correct`,
      );
    }
    results.storm = storms;
    if (SECTIONS.includes('backfill')) results.backfill = await backfill(stack, direct);
  } finally {
    await stack.stop();
  }
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${arch()}-${cpus().length}cpu`;
  const report = { date, machine, cpu: cpus()[0]?.model, node: process.version, ...results };
  mkdirSync(OUT, { recursive: true });
  const base = join(OUT, `cold-start-${date}-${machine}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderColdStart(report as unknown as ColdStartReport);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(join(OUT, 'cold-start-latest.md'), markdown);
  process.stdout.write(markdown);
}

/**
 * 200 blobs of mixed sizes in S3: the backfill command against reading them with the AWS
 * SDK and against storing the same sizes alone, each round on a flushed cluster.
 */
async function backfill(
  stack: Stack,
  direct: Record<string, string>,
): Promise<NonNullable<ColdStartReport['backfill']>> {
  const sizes = [256 * 1024, MiB, 3 * MiB, 8 * MiB, 16 * MiB];
  let total = 0;
  const blobSizes: number[] = [];
  for (let i = 0; i < 200; i++) {
    const blob = randomFillSync(Buffer.allocUnsafe(sizes[i % sizes.length]!));
    blobSizes.push(blob.length);
    total += blob.length;
    await stack.store.put(Readable.from([blob], { objectMode: false }), { key: md5(blob) });
  }
  const env = { ...stack.env(direct), PATH: process.env.PATH ?? '' };
  const groups = {
    redis: stack.redis.nodes.map((node) => node.process.pid!),
    s3: stack.s3.pids(),
  };
  /** Runs one process to its end: its wall time, and the CPU time of every process involved. */
  const measured = async (args: string[]): Promise<{ out: string; seconds: number; cpu: Cpu }> => {
    const meter = cpuMeter(groups);
    const started = performance.now();
    const out = await run(process.execPath, args, env);
    const seconds = (performance.now() - started) / 1000;
    const used = meter.read();
    return { out, seconds, cpu: { node: used.children, redis: used.redis ?? 0, s3: used.s3 ?? 0 } };
  };
  const rounds: BackfillRound[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const reading = await measured([
      join(import.meta.dirname, 's3-read-all.ts'),
      String(PARALLELISM),
    ]);
    const reference = lastJson(reading.out);
    flushRedis(stack.redis);
    const storing = await measured([
      join(import.meta.dirname, 'redis-write-all.ts'),
      String(PARALLELISM),
      JSON.stringify(blobSizes),
    ]);
    const ceiling = lastJson(storing.out);
    flushRedis(stack.redis);
    const loading = await measured([
      ...(process.env.BENCH_BACKFILL_NODE_FLAGS ?? '--max-semi-space-size=2').split(' '),
      ...(CPU_PROF === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', CPU_PROF]),
      join(REPO_ROOT, 'dist/dataplane/src/commands/backfill.js'),
      '--max-bytes',
      String(total * 2),
      '--parallelism',
      String(PARALLELISM),
    ]);
    const s3MBps = reference.bytes / 1e6 / reference.seconds;
    const redisMBps = ceiling.bytes / 1e6 / ceiling.seconds;
    const backfillMBps = total / 1e6 / loading.seconds;
    rounds.push({
      s3MBps,
      redisMBps,
      backfillMBps,
      ratio: backfillMBps / s3MBps,
      cpuPerGB: {
        s3: perGB(reading.cpu, reference.bytes),
        storing: perGB(storing.cpu, ceiling.bytes),
        backfill: perGB(loading.cpu, total),
      },
    });
    const cpu = rounds.at(-1)!.cpuPerGB!;
    log(
      `backfill ${(total / MiB).toFixed(0)} MiB: ${backfillMBps.toFixed(0)} MB/s (whole command) vs S3 SDK ${s3MBps.toFixed(0)} MB/s: ${(backfillMBps / s3MBps).toFixed(2)} ×; storing alone ${redisMBps.toFixed(0)} MB/s; CPU s/GB: S3 ${describeCpu(cpu.s3)}, storing ${describeCpu(cpu.storing)}, backfill ${describeCpu(cpu.backfill)}`,
    );
  }
  return { blobs: 200, bytes: total, parallelism: PARALLELISM, rounds };
}

/** CPU seconds, per process group. */
interface Cpu {
  node: number;
  redis: number;
  s3: number;
}

interface BackfillRound {
  s3MBps: number;
  redisMBps?: number;
  backfillMBps: number;
  ratio: number;
  /** CPU seconds per GB moved: the measured process, the Redis nodes, the S3 server. */
  cpuPerGB?: { s3: Cpu; storing: Cpu; backfill: Cpu };
}

function perGB(cpu: Cpu, bytes: number): Cpu {
  const scale = 1e9 / bytes;
  return { node: cpu.node * scale, redis: cpu.redis * scale, s3: cpu.s3 * scale };
}

const cpuTotal = (cpu: Cpu): number => cpu.node + cpu.redis + cpu.s3;

function describeCpu(cpu: Cpu): string {
  return `${cpuTotal(cpu).toFixed(2)} (node ${cpu.node.toFixed(2)}, redis ${cpu.redis.toFixed(2)}, S3 server ${cpu.s3.toFixed(2)})`;
}

interface ColdStartReport {
  date: string;
  machine: string;
  cpu?: string;
  node: string;
  single: { cache: ReaderTiming; s3: ReaderTiming }[];
  storm: {
    medianFirstMs: number;
    p90FirstMs: number;
    maxFirstMs: number;
    medianLastMs: number;
    maxLastMs: number;
    correct: number;
  }[];
  backfill?: {
    blobs: number;
    bytes: number;
    parallelism: number;
    rounds: BackfillRound[];
  };
}

function renderColdStart(report: ColdStartReport): string {
  const lines = [
    `# blobcache cold start — ${report.date}`,
    '',
    `Machine: ${report.machine} (${report.cpu ?? 'unknown CPU'}), Node ${report.node}; Redis Cluster (3 + 3) and versitygw on loopback, 3 data planes (compiled build), load from separate processes. Reproduce: \`npm run bench:cold-start\`.`,
    '',
    ...(report.single.length === 0 ? [] : singleRows(report.single)),
    ...(report.storm.length === 0 ? [] : stormRows(report.storm)),
    ...(report.backfill === undefined ? [] : backfillRows(report.backfill)),
  ];
  return lines.join('\n');
}

/** The figures a reference process printed last (its log lines, if any, come before). */
function lastJson(out: string): { bytes: number; seconds: number } {
  const line = out.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as { bytes: number; seconds: number };
}

function fixed(value: number): string {
  return value.toFixed(value < 10 ? 1 : 0);
}

function singleRows(rows: ColdStartReport['single']): string[] {
  return [
    '## A cold 64 MiB blob, one reader',
    '',
    '| round | cache first byte ms | cache last byte ms | S3 direct first byte ms | S3 direct last byte ms |',
    '|---|---|---|---|---|',
    ...rows.map(
      (row, i) =>
        `| ${i + 1} | ${fixed(row.cache.firstByteMs)} | ${fixed(row.cache.lastByteMs)} | ${fixed(row.s3.firstByteMs)} | ${fixed(row.s3.lastByteMs)} |`,
    ),
    '',
  ];
}

function stormRows(rows: ColdStartReport['storm']): string[] {
  return [
    '## 100 readers of a cold 64 MiB blob over 3 processes (one S3 GET)',
    '',
    '| round | median first byte ms | p90 first byte ms | max first byte ms | median last byte ms | max last byte ms | right bytes |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (row, i) =>
        `| ${i + 1} | ${fixed(row.medianFirstMs)} | ${fixed(row.p90FirstMs)} | ${fixed(row.maxFirstMs)} | ${fixed(row.medianLastMs)} | ${fixed(row.maxLastMs)} | ${row.correct}/100 |`,
    ),
    '',
  ];
}

function backfillRows(backfill: NonNullable<ColdStartReport['backfill']>): string[] {
  return [
    `## Backfill: ${backfill.blobs} blobs, ${(backfill.bytes / MiB).toFixed(0)} MiB, parallelism ${backfill.parallelism}`,
    '',
    'The backfill figure is the whole command (start, listing, loading, exit); the S3 figure reads the same objects with the AWS SDK at the same parallelism, hashing nothing and storing nothing; "storing alone" writes the same sizes into the Redis Cluster as a fill stages them (MD5, 1 MiB chunks, same writes in flight), reading nothing. Goal: backfill at least 0.8 × S3.',
    '',
    '| round | backfill MB/s | S3 SDK MB/s | ratio | storing alone MB/s | backfill / storing alone |',
    '|---|---|---|---|---|---|',
    ...backfill.rounds.map(
      (row, i) =>
        `| ${i + 1} | ${row.backfillMBps.toFixed(0)} | ${row.s3MBps.toFixed(0)} | ${row.ratio.toFixed(2)} × | ${row.redisMBps?.toFixed(0) ?? '—'} | ${row.redisMBps === undefined ? '—' : `${(row.backfillMBps / row.redisMBps).toFixed(2)} ×`} |`,
    ),
    '',
    'CPU seconds per GB moved, summed over the measured process (node), the six Redis nodes and the S3 server (read from /proc: the other load on a shared machine changes throughputs, not these). "S3 read" is the SDK reference, "storing" the storing-alone reference, "backfill" the command; the ratio is the backfill\'s throughput on a machine of its own whose cores are all busy, against the S3 read\'s (the inverse ratio of their CPU per byte).',
    '',
    '| round | S3 read CPU s/GB | storing alone CPU s/GB | backfill CPU s/GB | backfill / S3 read at equal CPU |',
    '|---|---|---|---|---|',
    ...backfill.rounds
      .filter((row) => row.cpuPerGB !== undefined)
      .map((row, i) => {
        const cpu = row.cpuPerGB!;
        return `| ${i + 1} | ${describeCpu(cpu.s3)} | ${describeCpu(cpu.storing)} | ${describeCpu(cpu.backfill)} | ${(cpuTotal(cpu.s3) / cpuTotal(cpu.backfill)).toFixed(2)} × |`;
      }),
    '',
  ];
}

await main();
