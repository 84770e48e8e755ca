import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { inParallel, metricSum, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;
const FAST_RETRIES = { BLOBCACHE_UPLOAD_RETRY_MAX_MS: '2000' };

async function put(plane: SpawnedDataPlane, blob: Buffer): Promise<Response> {
  return fetch(`${plane.url}/v1/blobs/${md5(blob)}`, { method: 'PUT', body: blob });
}

/** Journal entries delivered to `consumer` and not acknowledged, over all partitions. */
async function pendingOn(stack: ProductionStack, consumer: string): Promise<number> {
  let total = 0;
  for (let partition = 0; partition < 8; partition++) {
    const summary = (await stack.cluster.xpending(`bc:{journal-${partition}}`, 'uploaders')) as [
      number,
      string | null,
      string | null,
      [string, string][] | null,
    ];
    total += Number(summary[3]?.find(([name]) => name === consumer)?.[1] ?? 0);
  }
  return total;
}

async function expectAllInS3(stack: ProductionStack, blobs: readonly Buffer[]): Promise<void> {
  const sizes = await inParallel(
    blobs,
    16,
    async (blob) => (await stack.store.head(md5(blob)))?.size,
  );
  expect(sizes).to.deep.equal(blobs.map((blob) => blob.length));
}

describe('faults: nothing acknowledged is lost', function () {
  this.timeout(240_000);
  let stack: ProductionStack;
  afterEach(async () => {
    await stack?.stop();
  });

  it('keeps acknowledging uploads while S3 is down for 30 s, and persists them all after', async () => {
    stack = await startProductionStack();
    const plane = await stack.spawn(FAST_RETRIES);
    await stack.s3.stop();
    const acknowledged: Buffer[] = [];
    const outage = Date.now();
    for (let i = 0; Date.now() - outage < 30_000; i++) {
      const blob = blobOf(i % 5 === 0 ? 9 * MiB + i : 20_000 + i, 200 + i);
      const response = await put(plane, blob);
      expect(response.status, `upload ${i} during the outage`).to.equal(201);
      acknowledged.push(blob);
      await sleep(250);
    }
    expect(await metricSum(plane.url, 'blobcache_journal_uploads_total')).to.equal(0);
    await stack.s3.start();
    await waitForDrain(plane.url);
    await expectAllInS3(stack, acknowledged);
    console.log(
      `      ${acknowledged.length} uploads acknowledged during the outage, all in S3 after it`,
    );
  });

  it('lets another process finish the journal of a process killed with SIGKILL', async () => {
    stack = await startProductionStack();
    const doomed = await stack.spawn(FAST_RETRIES);
    await stack.s3.stop();
    const blobs = Array.from({ length: 20 }, (_, i) => blobOf(50_000 + i, 300 + i));
    for (const blob of blobs) expect((await put(doomed, blob)).status).to.equal(201);
    // Its uploader has taken every entry (they are pending on its consumer) when it dies,
    // so only a takeover (XAUTOCLAIM) can finish them.
    const consumer = String(
      (
        doomed.logs.find((line) => line.message === 'Started the data plane')?.tiers as {
          consumer?: string;
        }
      )?.consumer,
    );
    await eventually('every entry to be delivered to the doomed process', async () =>
      (await pendingOn(stack, consumer)) === blobs.length ? true : null,
    );
    await doomed.stop('SIGKILL');
    await stack.s3.start();
    const survivor = await stack.spawn({
      ...FAST_RETRIES,
      BLOBCACHE_JOURNAL_CLAIM_IDLE_MS: '2000',
    });
    await waitForDrain(survivor.url, 60_000);
    await expectAllInS3(stack, blobs);
    expect(await metricSum(survivor.url, 'blobcache_journal_uploads_total')).to.be.at.least(
      blobs.length,
    );
  });

  it('loses no acknowledged blob when a Redis master dies under load, with only brief 503s', async () => {
    stack = await startProductionStack();
    const planes = [await stack.spawn(FAST_RETRIES), await stack.spawn(FAST_RETRIES)];
    const acknowledged: Buffer[] = [];
    const acknowledgedAt: number[] = [];
    const answers: { sent: number; at: number; status: number }[] = [];
    const started = Date.now();
    let killedAt = 0;
    const victim = stack.redis.masters()[0]!;
    // The master dies once the load is well under way (40 answers in).
    const killer = eventually('40 answers', () => Promise.resolve(answers.length >= 40), {
      intervalMs: 20,
    }).then(() => {
      killedAt = Date.now();
      stack.redis.kill(victim);
    });
    const worker = async (id: number): Promise<void> => {
      for (
        let i = 0;
        Date.now() - started < 60_000 && (killedAt === 0 || Date.now() - killedAt < 12_000);
        i++
      ) {
        const plane = planes[(id + i) % 2]!;
        const blob = blobOf(10_000 + ((id * 1000 + i) % 5000), 10_000 * id + i);
        const sent = Date.now();
        const response = await put(plane, blob).catch(() => null);
        answers.push({ sent, at: Date.now(), status: response?.status ?? 0 });
        if (response?.status === 201 || response?.status === 200) {
          acknowledged.push(blob);
          acknowledgedAt.push(Date.now());
        }
        const earlier = acknowledged[Math.floor(Math.random() * acknowledged.length)];
        if (earlier !== undefined) {
          const sentGet = Date.now();
          const got = await fetch(`${plane.url}/v1/blobs/${md5(earlier)}`).catch(() => null);
          const body =
            got === null
              ? null
              : Buffer.from(await got.arrayBuffer().catch(() => new ArrayBuffer(0)));
          answers.push({ sent: sentGet, at: Date.now(), status: got?.status ?? 0 });
          if (got?.status === 200)
            expect(body?.equals(earlier), 'a GET during the failover').to.be.true;
        }
      }
    };
    await Promise.all([killer, ...[0, 1, 2, 3].map(worker)]);
    const unexpected = answers.filter((answer) => ![200, 201, 503].includes(answer.status));
    for (const plane of planes) {
      // Expected 503s are logged as errors too; print only the unexpected ones.
      const unexpectedErrors = plane.logs.filter(
        (line) => line.level === 'error' && line.code !== 'service-unavailable',
      );
      for (const entry of unexpectedErrors)
        console.log('      server error:', JSON.stringify(entry));
    }
    expect(unexpected, 'answers other than 200/201/503').to.deep.equal([]);
    const unavailable = answers.filter((answer) => answer.status === 503);
    const lastUnavailable = Math.max(killedAt, ...unavailable.map((answer) => answer.at));
    console.log(
      `      ${answers.length} requests, ${acknowledged.length} acknowledged uploads, ${unavailable.length} answered 503, ` +
        `the last ${((lastUnavailable - killedAt) / 1000).toFixed(1)} s after the kill`,
    );
    expect(
      unavailable.every((answer) => answer.at >= killedAt),
      '503s only after the kill',
    ).to.be.true;
    expect(lastUnavailable - killedAt).to.be.below(15_000);
    // Requests were under way when the master died, and kept coming through the failover.
    const acrossTheKill = answers.filter(
      (answer) => answer.sent < killedAt && answer.at > killedAt,
    );
    expect(acrossTheKill.length, 'requests under way at the kill').to.be.at.least(1);
    expect(
      answers.filter((answer) => answer.at > killedAt).length,
      'answers after the kill',
    ).to.be.greaterThan(20);
    expect(
      acknowledgedAt.filter((at) => at > lastUnavailable).length,
      'uploads acknowledged after the last 503',
    ).to.be.greaterThan(10);
    // Connection trouble went to the JSON log, never to stderr.
    for (const plane of planes) {
      expect(plane.stderr()).to.equal('');
      expect(plane.logs.some((line) => line.message === 'Redis reported an error')).to.be.true;
    }
    await stack.redis.waitHealthy();
    // The failover really happened: a replica took over the dead master's slots.
    expect(stack.redis.masters()).to.have.length(3).and.not.include(victim);
    await waitForDrain(planes[0]!.url, 60_000);
    const readable = await inParallel(acknowledged, 8, async (blob, i) => {
      const got = await fetch(`${planes[i % 2]!.url}/v1/blobs/${md5(blob)}`);
      return got.status === 200 && Buffer.from(await got.arrayBuffer()).equals(blob);
    });
    expect(readable.filter((ok) => !ok)).to.have.length(0);
  });

  it('answers 503 with Retry-After when Redis is full of unpersisted blobs, and loses none', async () => {
    stack = await startProductionStack({ maxMemory: '40mb' });
    const plane = await stack.spawn(FAST_RETRIES);
    await stack.s3.stop();
    const acknowledged: Buffer[] = [];
    let refusal: Response | undefined;
    for (let i = 0; i < 400 && refusal === undefined; i++) {
      const blob = blobOf(MiB, 500 + i);
      const response = await put(plane, blob);
      if (response.status === 201) acknowledged.push(blob);
      else refusal = response;
    }
    expect(refusal?.status).to.equal(503);
    expect(refusal?.headers.get('retry-after')).to.match(/^\d+$/);
    expect(await refusal?.json()).to.include({ code: 'service-unavailable' });
    expect(acknowledged.length).to.be.greaterThan(10);
    await stack.s3.start();
    await waitForDrain(plane.url, 60_000);
    await expectAllInS3(stack, acknowledged);
    console.log(
      `      ${acknowledged.length} × 1 MiB acknowledged before the first 503; all in S3 after`,
    );
  });
});
