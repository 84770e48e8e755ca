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
 * Writes bench/results/cold-start-<date>-<machine>.{json,md} and cold-start-latest.md.
 * BENCH_ROUNDS (default 3) repeats each comparison.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { md5 } from '../test/harness/blobs.ts';
import { REPO_ROOT } from '../test/harness/dataplane.ts';
import { flushRedis } from '../test/harness/production-helpers.ts';
import { BUCKET, s3Client, startProductionStack } from '../test/harness/production.ts';
import type { ReaderTiming } from './cold-readers.ts';
import { run } from './load.ts';

const MiB = 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARALLELISM = 4;

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
  const planes = await Promise.all([0, 1, 2].map(() => stack.spawn(direct, { compiled: true })));
  const s3 = s3Client(stack.s3.endpoint);
  const signed = (key: string) =>
    getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: stack.store.objectKey(key) }), {
      expiresIn: 3600,
    });
  const results: Record<string, unknown> = {};
  try {
    const single: { cache: ReaderTiming; s3: ReaderTiming }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
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
    for (let round = 0; round < ROUNDS; round++) {
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
    const backfills: {
      s3MBps: number;
      redisMBps: number;
      backfillMBps: number;
      ratio: number;
    }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const reference = JSON.parse(
        await run(
          process.execPath,
          [join(import.meta.dirname, 's3-read-all.ts'), String(PARALLELISM)],
          env,
        ),
      ) as { bytes: number; seconds: number };
      flushRedis(stack.redis);
      const ceiling = JSON.parse(
        await run(
          process.execPath,
          [
            join(import.meta.dirname, 'redis-write-all.ts'),
            String(PARALLELISM),
            JSON.stringify(blobSizes),
          ],
          env,
        ),
      ) as { bytes: number; seconds: number };
      flushRedis(stack.redis);
      const started = performance.now();
      await run(
        process.execPath,
        [
          '--max-semi-space-size=2',
          join(REPO_ROOT, 'dist/dataplane/src/commands/backfill.js'),
          '--max-bytes',
          String(total * 2),
          '--parallelism',
          String(PARALLELISM),
        ],
        env,
      );
      const seconds = (performance.now() - started) / 1000;
      const s3MBps = reference.bytes / 1e6 / reference.seconds;
      const redisMBps = ceiling.bytes / 1e6 / ceiling.seconds;
      const backfillMBps = total / 1e6 / seconds;
      backfills.push({ s3MBps, redisMBps, backfillMBps, ratio: backfillMBps / s3MBps });
      log(
        `backfill ${(total / MiB).toFixed(0)} MiB: ${backfillMBps.toFixed(0)} MB/s (whole command) vs S3 SDK ${s3MBps.toFixed(0)} MB/s: ${(backfillMBps / s3MBps).toFixed(2)} ×; storing alone ${redisMBps.toFixed(0)} MB/s`,
      );
    }
    results.backfill = { blobs: 200, bytes: total, parallelism: PARALLELISM, rounds: backfills };
  } finally {
    await stack.stop();
  }
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${arch()}-${cpus().length}cpu`;
  const report = { date, machine, cpu: cpus()[0]?.model, node: process.version, ...results };
  const base = join(import.meta.dirname, 'results', `cold-start-${date}-${machine}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderColdStart(report as unknown as ColdStartReport);
  writeFileSync(`${base}.md`, markdown);
  writeFileSync(join(import.meta.dirname, 'results', 'cold-start-latest.md'), markdown);
  process.stdout.write(markdown);
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
  backfill: {
    blobs: number;
    bytes: number;
    parallelism: number;
    rounds: { s3MBps: number; redisMBps?: number; backfillMBps: number; ratio: number }[];
  };
}

function renderColdStart(report: ColdStartReport): string {
  const ms = (value: number) => value.toFixed(value < 10 ? 1 : 0);
  const lines = [
    `# blobcache cold start — ${report.date}`,
    '',
    `Machine: ${report.machine} (${report.cpu ?? 'unknown CPU'}), Node ${report.node}; Redis Cluster (3 + 3) and versitygw on loopback, 3 data planes (compiled build), load from separate processes. Reproduce: \`npm run bench:cold-start\`.`,
    '',
    '## A cold 64 MiB blob, one reader',
    '',
    '| round | cache first byte ms | cache last byte ms | S3 direct first byte ms | S3 direct last byte ms |',
    '|---|---|---|---|---|',
    ...report.single.map(
      (row, i) =>
        `| ${i + 1} | ${ms(row.cache.firstByteMs)} | ${ms(row.cache.lastByteMs)} | ${ms(row.s3.firstByteMs)} | ${ms(row.s3.lastByteMs)} |`,
    ),
    '',
    '## 100 readers of a cold 64 MiB blob over 3 processes (one S3 GET)',
    '',
    '| round | median first byte ms | p90 first byte ms | max first byte ms | median last byte ms | max last byte ms | right bytes |',
    '|---|---|---|---|---|---|---|',
    ...report.storm.map(
      (row, i) =>
        `| ${i + 1} | ${ms(row.medianFirstMs)} | ${ms(row.p90FirstMs)} | ${ms(row.maxFirstMs)} | ${ms(row.medianLastMs)} | ${ms(row.maxLastMs)} | ${row.correct}/100 |`,
    ),
    '',
    `## Backfill: ${report.backfill.blobs} blobs, ${(report.backfill.bytes / MiB).toFixed(0)} MiB, parallelism ${report.backfill.parallelism}`,
    '',
    'The backfill figure is the whole command (start, listing, loading, exit); the S3 figure reads the same objects with the AWS SDK at the same parallelism, hashing nothing and storing nothing; "storing alone" writes the same sizes into the Redis Cluster as a fill stages them (MD5, 1 MiB chunks, same writes in flight), reading nothing. Goal: backfill at least 0.8 × S3.',
    '',
    '| round | backfill MB/s | S3 SDK MB/s | ratio | storing alone MB/s | backfill / storing alone |',
    '|---|---|---|---|---|---|',
    ...report.backfill.rounds.map(
      (row, i) =>
        `| ${i + 1} | ${row.backfillMBps.toFixed(0)} | ${row.s3MBps.toFixed(0)} | ${row.ratio.toFixed(2)} × | ${row.redisMBps?.toFixed(0) ?? '—'} | ${row.redisMBps === undefined ? '—' : `${(row.backfillMBps / row.redisMBps).toFixed(2)} ×`} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

await main();
