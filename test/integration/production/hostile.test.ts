import { expect } from 'chai';
import type { Socket } from 'node:net';
import { GeneratedBlob, blobOf, digestOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import {
  KILLER_UPLOADS,
  expectAlive,
  pythonPut,
  runKillerUploads,
} from '../../harness/hostile-clients.ts';
import { metricSum, metricValue, waitForDrain } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';
import { parseResponses, rawExchange } from '../../harness/raw-socket.ts';
import {
  ALLOCATOR_SLACK_BYTES,
  MEMORY_PROBE_ENV,
  STREAM_WINDOW_BYTES,
  describeGrowth,
  idleCuts,
  memoryUse,
  mib,
  openConnections,
  stalledGet,
  waitForIdleCuts,
  waitUntilStalled,
} from '../../harness/stalled-readers.ts';
import { uploadGenerated } from '../../harness/http.ts';

const MiB = 1024 * 1024;
/**
 * Long enough for 100 readers to come and stall before the first of them is cut (about
 * 10 s on a loaded 2-core machine): their memory is measured with all of them there.
 */
const IDLE_MS = 30_000;
/** Small enough that memory visibly follows it rather than the number of readers. */
const READ_AHEAD_MIB = 16;
const HOT_TIER_MIB = 64;

/** Issue 9 on the production tiers (real Redis Cluster + S3), against the real process. */
describe('hostile clients against the production tiers (real process, Redis + S3)', function () {
  this.timeout(300_000);
  let stack: ProductionStack;
  let plane: SpawnedDataPlane;
  const stored = blobOf(300_000, 301);
  const storedKey = md5(stored);

  before(async () => {
    stack = await startProductionStack();
    plane = await stack.spawn({
      BLOBCACHE_MAX_BLOB_BYTES: '64Mi',
      BLOBCACHE_IDLE_TIMEOUT_MS: String(IDLE_MS),
      BLOBCACHE_READ_AHEAD_BYTES: String(READ_AHEAD_MIB * MiB),
      BLOBCACHE_MEMORY_CACHE_BYTES: `${HOT_TIER_MIB}Mi`,
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '8Mi',
      ...MEMORY_PROBE_ENV,
    });
    const put = await fetch(`${plane.url}/v1/blobs/${storedKey}`, { method: 'PUT', body: stored });
    expect(put.status).to.equal(201);
  });
  afterEach(async () => {
    expect(plane.child.exitCode).to.equal(null);
    await expectAlive(plane.url);
  });
  after(async () => {
    await stack?.stop();
  });

  describe('item 1: no request kills the process', () => {
    for (const [name, build] of Object.entries(KILLER_UPLOADS)) {
      it(`answers ${name} with a 400 problem, keyed and unkeyed`, async () => {
        const requests = [build('b'.repeat(32)), build(storedKey)].map((text) => text);
        // The unkeyed upload goes through the spool first.
        requests.push(build('x').replace('PUT /v1/blobs/x', 'POST /v1/blobs'));
        for (const text of requests) {
          const [answer] = parseResponses((await rawExchange(plane.url, text)).text);
          expect(answer?.status).to.equal(400);
          expect(answer?.headers['content-type']).to.equal('application/problem+json');
        }
      });
    }

    it('survives resets after the headers and short bodies, for new and stored keys, many times', async () => {
      for (let round = 0; round < 3; round++) await runKillerUploads(plane.url, storedKey);
      expect(await metricSum(plane.url, 'blobcache_client_errors_total')).to.be.above(0);
      const read = await fetch(`${plane.url}/v1/blobs/${storedKey}`);
      expect(Buffer.from(await read.arrayBuffer()).equals(stored)).to.be.true;
    });
  });

  describe('item 6: early answers', () => {
    it('delivers a 413 to Python http.client writing its whole body first', async () => {
      for (let i = 0; i < 3; i++) {
        const answer = await pythonPut(`${plane.url}/v1/blobs/${'d'.repeat(32)}`, 80 * MiB);
        expect(answer.status).to.equal(413);
        expect(JSON.parse(answer.body)).to.include({ code: 'blob-too-large' });
      }
    });
  });

  describe('item 4: readers that stop reading', () => {
    /**
     * Stalls 100 readers of a blob, checks what they hold against `budget` (what the
     * budgets let them hold beyond what was live before) after a full collection, runs
     * `whileStalled`, then, with `awaitCut`, checks that they are cut after the idle
     * timeout; then that everything is given back.
     */
    async function stallHundredReaders(
      blob: GeneratedBlob,
      options: {
        what: string;
        budget: () => Promise<number>;
        awaitCut: boolean;
        whileStalled?: () => Promise<void>;
        /** Runs once the blob is stored, before `before` is measured. */
        prepare?: () => Promise<void>;
      },
    ): Promise<void> {
      const { what, budget, awaitCut, whileStalled, prepare } = options;
      const key = blob.key();
      expect(await uploadGenerated(`${plane.url}/v1/blobs/${key}`, blob)).to.equal(201);
      // Copies to S3 done: what the uploader held is not taken for what readers hold.
      await waitForDrain(plane.url);
      await prepare?.();
      const cutsBefore = await idleCuts(plane.url);
      const allowed = await budget();
      const before = await memoryUse(plane);
      const readers: Socket[] = [];
      const openedAt = Date.now();
      for (let i = 0; i < 100; i++) readers.push(await stalledGet(plane.url, key));
      const stalledAt = await waitUntilStalled(plane.url);
      const during = await memoryUse(plane);
      const readAhead = await metricValue(plane.url, 'blobcache_read_ahead_bytes');
      console.log(
        `      100 stalled readers of ${what} (all stalled ${stalledAt - openedAt} ms after the first came): ${describeGrowth(before, during)}; read-ahead held ${mib(readAhead)}`,
      );
      // Measured while every reader is still there (none cut yet for being idle).
      expect(await openConnections(plane.url)).to.be.at.least(100);
      expect(readAhead).to.be.at.most(READ_AHEAD_MIB * MiB);
      // Before: 4.9 MiB per reader (+494 MiB); then, of a blob the hot tier admits, about
      // 1 MiB per reader of copies into the hot tier that had failed.
      const bound = allowed + 100 * STREAM_WINDOW_BYTES;
      expect(during.arrayBuffers - before.arrayBuffers).to.be.at.most(bound);
      expect(during.rss - before.rss).to.be.below(bound + ALLOCATOR_SLACK_BYTES);
      await whileStalled?.();
      if (awaitCut) {
        const cutAfter = await waitForIdleCuts(plane.url, {
          before: cutsBefore,
          count: 100,
          since: stalledAt,
          idleMs: IDLE_MS,
        });
        console.log(`      cut ${cutAfter} ms after they stalled (idleTimeoutMs ${IDLE_MS})`);
        expect(cutAfter).to.be.below(1.5 * IDLE_MS + 1000);
      }
      for (const reader of readers) reader.destroy();
      await eventually(
        'the read-ahead budget to be given back',
        async () => (await metricValue(plane.url, 'blobcache_read_ahead_bytes')) === 0,
      );
      // And a reader that does read still gets every byte.
      const whole = await fetch(`${plane.url}/v1/blobs/${key}`);
      expect(await digestOf(whole.body!)).to.deep.equal({ md5: key, size: blob.size });
    }

    it('keeps 100 stalled readers of a 32 MiB blob in Redis within the read-ahead budget, then cuts them', async () => {
      // Too large for the hot tier: only the read-ahead budget.
      await stallHundredReaders(new GeneratedBlob(32 * MiB, 302), {
        what: 'a 32 MiB blob',
        budget: () => Promise.resolve(READ_AHEAD_MIB * MiB),
        awaitCut: true,
      });
    });

    it('keeps 100 stalled readers of a 32 MiB blob kept in the local tier within the read-ahead budget', async () => {
      const blob = new GeneratedBlob(32 * MiB, 304);
      const copies = (): Promise<number> => metricValue(plane.url, 'blobcache_local_tier_copies');
      const copiesBefore = await copies();
      // Every reader is then served from the kept copy, through reused buffers (0056).
      await stallHundredReaders(blob, {
        what: 'a 32 MiB blob kept in the local tier',
        budget: () => Promise.resolve(READ_AHEAD_MIB * MiB),
        awaitCut: false,
        prepare: async () => {
          const whole = await fetch(`${plane.url}/v1/blobs/${blob.key()}`);
          expect(await digestOf(whole.body!)).to.deep.equal({ md5: blob.key(), size: blob.size });
          await eventually('the copy kept', async () => (await copies()) === copiesBefore + 1);
        },
      });
    });

    it('keeps 100 stalled readers of an 8 MiB blob, copied into the hot tier, within the hot tier and read-ahead budgets', async () => {
      const blob = new GeneratedBlob(8 * MiB, 303);
      const hotBytes = (): Promise<number> => metricValue(plane.url, 'blobcache_hot_tier_bytes');
      const hotBefore = await hotBytes();
      // Cutting stalled readers is shown above; these are let go of at once.
      await stallHundredReaders(blob, {
        what: 'an 8 MiB blob',
        budget: async () => READ_AHEAD_MIB * MiB + HOT_TIER_MIB * MiB - (await hotBytes()),
        awaitCut: false,
        whileStalled: async () => {
          // The readers make one copy between them (or read the one it became), not one each.
          expect((await hotBytes()) - hotBefore).to.be.at.most(blob.size);
        },
      });
    });
  });
});
