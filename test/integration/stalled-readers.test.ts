import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GeneratedBlob } from '../harness/blobs.ts';
import { spawnDataPlane, type SpawnedDataPlane } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { uploadGenerated } from '../harness/http.ts';
import { expectAlive } from '../harness/hostile-clients.ts';
import { openSocket, parseResponses, rawExchange } from '../harness/raw-socket.ts';
import { metricValue } from '../harness/production-helpers.ts';
import {
  ALLOCATOR_SLACK_BYTES,
  MEMORY_PROBE_ENV,
  STREAM_WINDOW_BYTES,
  describeGrowth,
  idleCuts,
  memoryUse,
  openConnections,
  stalledGet,
  waitForIdleCuts,
  waitUntilStalled,
} from '../harness/stalled-readers.ts';

const MiB = 1024 * 1024;
const IDLE_MS = 4000;

/** Issue 9, item 4 on the embedded tier: readers that stop reading, against the real process. */
describe('readers that stop reading (embedded, real process)', function () {
  this.timeout(180_000);
  let dataDir: string;
  let plane: SpawnedDataPlane | undefined;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'blobcache-stalled-'));
  });
  afterEach(async () => {
    await plane?.stop('SIGKILL');
    plane = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps 40 stalled readers of distinct 8 MiB blobs within the memory budget, and cuts them after idleTimeoutMs', async () => {
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_MEMORY_CACHE_BYTES: '64Mi',
      BLOBCACHE_MEMORY_CACHE_MAX_ENTRY_BYTES: '8Mi',
      BLOBCACHE_IDLE_TIMEOUT_MS: String(IDLE_MS),
      ...MEMORY_PROBE_ENV,
    });
    const keys: string[] = [];
    for (let i = 0; i < 40; i++) {
      const blob = new GeneratedBlob(8 * MiB, 200 + i);
      const key = blob.key();
      keys.push(key);
      expect(await uploadGenerated(`${plane.url}/v1/blobs/${key}`, blob)).to.equal(201);
    }
    const cutsBefore = await idleCuts(plane.url);
    const tierBefore = await metricValue(plane.url, 'blobcache_fast_tier_bytes');
    const before = await memoryUse(plane);
    const readers: Socket[] = [];
    for (const key of keys) readers.push(await stalledGet(plane.url, key));
    const stalledAt = await waitUntilStalled(plane.url);
    // Every stalled reader is still connected (a keep-alive connection left by the uploads
    // may close meanwhile, so connections from before are not counted on). Asked first: the
    // idle timeout starts cutting them idleTimeoutMs after they stalled, and measuring
    // memory takes a while on a loaded machine.
    expect(await openConnections(plane.url)).to.be.at.least(40);
    const during = await memoryUse(plane);
    console.log(
      `      40 stalled readers of 8 MiB blobs, 64 MiB memory tier: ${describeGrowth(before, during)}`,
    );
    // Each reader's copy into the memory tier (a miss fills it) is reserved in the tier's
    // budget, full before the readers came; outside it, each connection holds its stream's
    // window. Before: 8 MiB per reader (+321 MiB), then about 1.2 MiB of failed copies.
    const bound = 64 * MiB - tierBefore + 40 * STREAM_WINDOW_BYTES;
    expect(during.arrayBuffers - before.arrayBuffers).to.be.at.most(bound);
    expect(await metricValue(plane.url, 'blobcache_fast_tier_bytes')).to.be.at.most(64 * MiB);
    expect(during.rss - before.rss).to.be.below(bound + ALLOCATOR_SLACK_BYTES);

    const cutAfter = await waitForIdleCuts(plane.url, {
      before: cutsBefore,
      count: 40,
      since: stalledAt,
      idleMs: IDLE_MS,
    });
    console.log(
      `      stalled readers cut ${cutAfter} ms after they stalled (idleTimeoutMs ${IDLE_MS})`,
    );
    // Once the timeout, not twice (the sweep runs every idleTimeoutMs / 4; loaded machines lag).
    expect(cutAfter).to.be.below(1.5 * IDLE_MS + 1000);
    for (const reader of readers) reader.destroy();
    await expectAlive(plane.url);
  });

  it('cuts a stalled reader once idleTimeoutMs passed without progress, not before, not twice as late', async () => {
    plane = await spawnDataPlane({
      BLOBCACHE_DATA_DIR: dataDir,
      BLOBCACHE_IDLE_TIMEOUT_MS: String(IDLE_MS),
    });
    const blob = new GeneratedBlob(64 * MiB, 250);
    const key = blob.key();
    expect(await uploadGenerated(`${plane.url}/v1/blobs/${key}`, blob)).to.equal(201);
    const cutsBefore = await idleCuts(plane.url);
    const reader = await stalledGet(plane.url, key);
    const stalledAt = await waitUntilStalled(plane.url);
    const cutAfter = await waitForIdleCuts(plane.url, {
      before: cutsBefore,
      count: 1,
      since: stalledAt,
      idleMs: IDLE_MS,
    });
    console.log(
      `      one stalled reader cut ${cutAfter} ms after it stalled (idleTimeoutMs ${IDLE_MS})`,
    );
    expect(cutAfter).to.be.above(IDLE_MS - 1000);
    expect(cutAfter).to.be.below(1.5 * IDLE_MS + 1000);
    reader.destroy();
    await expectAlive(plane.url);
  });

  it('answers connections beyond the cap with 503 problem+json, and serves again once they close', async () => {
    plane = await spawnDataPlane({ BLOBCACHE_DATA_DIR: dataDir, BLOBCACHE_MAX_CONNECTIONS: '5' });
    const held = await Promise.all(Array.from({ length: 4 }, () => openSocket(plane!.url)));
    // The fifth connection (this request) is still within the cap.
    await expectAlive(plane.url);
    held.push(await openSocket(plane.url));
    // A new connection (fetch would reuse its pooled one).
    const exchange = await rawExchange(plane.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const [refused] = parseResponses(exchange.text);
    expect(refused?.status).to.equal(503);
    expect(refused?.headers['retry-after']).to.equal('1');
    expect(refused?.headers['content-type']).to.equal('application/problem+json');
    expect((JSON.parse(refused!.body) as { detail: string }).detail).to.contain(
      'maximum of 5 connections',
    );
    for (const socket of held) socket.destroy();
    await eventually(
      'the held connections to close',
      async () => (await fetch(`${plane!.url}/healthz`)).status === 200,
    );
    await expectAlive(plane.url);
  });
});
