import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore, PutOptions, PutResult } from '../../../dataplane/src/blob/store.ts';
import { Uploader } from '../../../dataplane/src/blob/uploader.ts';
import { Metrics } from '../../../dataplane/src/metrics.ts';
import { RedisFastTier } from '../../../dataplane/src/redis/fast-tier.ts';
import { Journal, type JournalEntry } from '../../../dataplane/src/redis/journal.ts';
import { UploadLeases } from '../../../dataplane/src/redis/upload-leases.ts';
import { publishAcknowledged } from '../../harness/acknowledged-upload.ts';
import { blobOf, md5 } from '../../harness/blobs.ts';
import { eventually } from '../../harness/eventually.ts';
import { silentLogger } from '../../harness/logger.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

const MiB = 1024 * 1024;

/**
 * The uploader's own races, played step by step on the real Redis Cluster and S3 server:
 * the uploader is driven in this process, and the moment another actor acts is chosen by
 * a hook in the durable store (the real S3 store does the work).
 */
describe('uploader races against a DELETE and a newer upload (real Redis and S3)', function () {
  this.timeout(120_000);
  let stack: ProductionStack;
  let fast: RedisFastTier;
  let journal: Journal;
  let leases: UploadLeases;

  before(async () => {
    stack = await startProductionStack();
    fast = new RedisFastTier({ redis: stack.cluster, chunkBytes: MiB, replicaWaitMs: 2_000 });
    journal = new Journal({ redis: stack.cluster, partitions: 8, replicaWaitMs: 2_000 });
    await journal.ensureGroups();
    leases = new UploadLeases(stack.cluster);
  });
  after(async () => {
    await stack?.stop();
  });

  const uploaderOn = (store: BlobStore, consumer: string): Uploader =>
    uploaderWith(store, new Metrics(), consumer);
  const uploaderWith = (store: BlobStore, metrics: Metrics, consumer = 'racer'): Uploader =>
    new Uploader({
      journal,
      fast,
      leases,
      store,
      metrics,
      logger: silentLogger,
      consumer,
      concurrency: 1,
      claimIdleMs: 30_000,
      retryMaxMs: 1_000,
      abandonAfterMs: 60_000,
      cachedTtlMs: 3_600_000,
    });

  /** Stages and publishes `blob` as an acknowledged upload would, under a new entry. */
  const upload = (blob: Buffer, generation: string): Promise<JournalEntry> =>
    publishAcknowledged({ fast, journal }, blob, generation);

  it('never leaves a cached copy without its S3 object when an upload raced by a DELETE removes the object a newer upload relied on', async () => {
    const blob = blobOf(2 * MiB + 1, 901);
    const key = md5(blob);
    const stale = await upload(blob, await fast.generation(key));
    let newer: JournalEntry | undefined;
    // While the stale upload's copy reaches S3: a DELETE fences Redis, the blob is uploaded
    // anew, and the new upload's uploader finds the object in S3 and marks its copy cached.
    const racing: BlobStore = Object.create(stack.store) as BlobStore;
    racing.put = async (source: Readable, options: PutOptions): Promise<PutResult> => {
      const result = await stack.store.put(source, options);
      await fast.delete(key);
      newer = await upload(blob, await fast.generation(key));
      await uploaderOn(stack.store, 'newer').persist(newer);
      expect(await stack.cluster.hget(`bc:{${key}}:m`, 'state')).to.equal('cached');
      return result;
    };
    await uploaderOn(racing, 'stale').persist(stale);

    // The stale upload took its object out of S3 again (the DELETE wins over it)...
    expect(await stack.store.head(key)).to.equal(null);
    // ...and made the newer copy pending again, under an entry of its own: not evictable.
    const manifest = await fast.manifest(key);
    expect(manifest?.state).to.equal('pending');
    expect(manifest?.persistToken).to.not.be.oneOf(['', stale.token, newer!.token]);
    expect(await stack.cluster.pttl(`bc:{${key}}:m`)).to.equal(-1);
    // That entry is in the journal and uploads it again; only it may mark it cached.
    const replacement = (await entriesFor(key)).find(
      (entry) => entry.token === manifest!.persistToken,
    );
    expect(replacement, 'the entry that persists the blob again').to.not.equal(undefined);
    await uploaderOn(stack.store, 'again').persist(replacement!);
    expect((await stack.store.head(key))?.size).to.equal(blob.length);
    expect((await fast.manifest(key))?.state).to.equal('cached');
  });

  it('stops an upload to S3 that a DELETE overtakes, and leaves nothing behind', async () => {
    const blob = blobOf(3 * MiB, 902);
    const key = md5(blob);
    const entry = await upload(blob, await fast.generation(key));
    const racing: BlobStore = Object.create(stack.store) as BlobStore;
    let deleteWaited: Promise<boolean> | undefined;
    racing.put = async (source: Readable, options: PutOptions): Promise<PutResult> => {
      // A DELETE arrives while the copy is under way: it fences Redis, then waits.
      await fast.delete(key);
      deleteWaited = leases.waitUntilNone(key, 30_000);
      return stack.store.put(source, options);
    };
    await uploaderOn(racing, 'overtaken').persist(entry);
    // The upload let go of its lease only after it removed what it stored.
    expect(await deleteWaited).to.equal(true);
    expect(await stack.store.head(key)).to.equal(null);
    expect(await fast.manifest(key)).to.equal(null);
  });

  it('takes back what it stored when a DELETE lands between its copy to S3 and marking the copy cached', async () => {
    const blob = blobOf(MiB + 5, 903);
    const key = md5(blob);
    const entry = await upload(blob, await fast.generation(key));
    const racing: BlobStore = Object.create(stack.store) as BlobStore;
    racing.put = async (source: Readable, options: PutOptions): Promise<PutResult> => {
      const result = await stack.store.put(source, options);
      // The copy is in S3; a DELETE fences Redis before the uploader marks it cached.
      await fast.delete(key);
      return result;
    };
    const metrics = new Metrics();
    await uploaderWith(racing, metrics).persist(entry);
    expect(await stack.store.head(key), 'the object the DELETE must not find again').to.equal(null);
    expect(await fast.manifest(key)).to.equal(null);
    const outcomes = (await metrics.uploads.get()).values;
    expect(outcomes.map(({ labels, value }) => [labels.result, value])).to.deep.equal([
      ['deleted', 1],
    ]);
    expect(await entriesFor(key)).to.deep.equal([]);
  });

  it('marks a copy cached only for the generation it was uploaded under and by its own entry', async () => {
    const blob = blobOf(64 * 1024, 904);
    const key = md5(blob);
    const generation = await fast.generation(key);
    const entry = await upload(blob, generation);
    const manifest = (await fast.manifest(key))!;
    const mark = { ttlMs: 60_000, persistToken: entry.token, generation };
    const sha256 = createHash('sha256').update(blob).digest('base64');
    expect(
      await fast.markCached(manifest, { ...mark, persistToken: 'another-entry', sha256 }),
    ).to.equal('superseded');
    // Refused, it changed nothing: still pending, never evicted, no SHA-256 recorded.
    const untouched = await fast.manifest(key);
    expect(untouched?.state).to.equal('pending');
    expect(untouched?.sha256).to.equal(undefined);
    expect(await stack.cluster.pttl(`bc:{${key}}:m`)).to.equal(-1);
    await fast.delete(key);
    expect(await fast.markCached(manifest, mark)).to.equal('deleted');
    const again = await upload(blob, await fast.generation(key));
    const republished = (await fast.manifest(key))!;
    expect(republished.sha256).to.equal(undefined);
    const newer = {
      ttlMs: 60_000,
      persistToken: again.token,
      generation: await fast.generation(key),
    };
    expect(await fast.markCached(republished, { ...newer, sha256 })).to.equal('cached');
    const cached = await fast.manifest(key);
    expect(cached?.state).to.equal('cached');
    // The SHA-256 the durable tier reported is kept with it, and never replaces one known.
    expect(cached?.sha256).to.equal(sha256);
    const other = createHash('sha256').update('other bytes').digest('base64');
    expect(await fast.markCached(cached!, { ...newer, sha256: other })).to.equal('cached');
    expect((await fast.manifest(key))?.sha256).to.equal(sha256);
    expect(await stack.cluster.pttl(`bc:{${key}}:m`)).to.be.within(1, 60_000);
  });

  it('answers the generation and the damaged mark with the lease', async () => {
    const key = md5(blobOf(1024, 905));
    const before = await leases.take(key, '');
    expect(before.generation).to.equal('');
    expect(before.durableCopyDamaged).to.equal(false);
    expect(await leases.waitUntilNone(key, 0)).to.equal(false);
    await before.release();
    await fast.rememberDamaged(key);
    try {
      await fast.delete(key);
      const after = await leases.take(key, '');
      expect(after.generation).to.equal(await fast.generation(key));
      expect(after.generation).to.not.equal('');
      expect(after.durableCopyDamaged).to.equal(true);
      await after.release();
      expect(await leases.waitUntilNone(key, 1_000)).to.equal(true);
    } finally {
      await fast.forgetDamaged(key);
    }
  });

  it('aborts the lease of an upload when a renewal finds a DELETE came', async () => {
    const key = md5(blobOf(1024, 906));
    // Renewed every 100 ms: a DELETE is noticed without waiting out a long copy.
    const shortLeases = new UploadLeases(stack.cluster, 300);
    const lease = await shortLeases.take(key, await fast.generation(key));
    try {
      // Renewals under the same generation keep it: two renewals (the lease's expiry moved
      // twice; the first one's answer was read before the second was sent) abort nothing.
      await renewals(key, 2);
      expect(lease.signal.aborted, 'aborted with no DELETE').to.equal(false);
      await fast.delete(key);
      await renewals(key, 2);
      expect(lease.signal.aborted, 'aborted after the DELETE').to.equal(true);
      expect(String(lease.signal.reason)).to.match(/was deleted meanwhile/);
      // Kept until released, so the DELETE still waits for the upload to let go.
      expect(await shortLeases.waitUntilNone(key, 0)).to.equal(false);
    } finally {
      await lease.release();
    }
    expect(await shortLeases.waitUntilNone(key, 1_000)).to.equal(true);
  });

  /** Resolves once the expiry of `key`'s (one) upload lease has moved `count` times. */
  async function renewals(key: string, count: number): Promise<void> {
    const expiry = async (): Promise<string | undefined> =>
      (await stack.cluster.zrange(`bc:{${key}}:uploads`, '0', '0', 'WITHSCORES'))[1];
    let last = await expiry();
    let seen = 0;
    await eventually(
      `${count} renewals of the lease on ${key}`,
      async () => {
        const now = await expiry();
        if (now !== last) seen += 1;
        last = now;
        return seen >= count;
      },
      { timeoutMs: 2_000, intervalMs: 10 },
    );
  }

  /** Entries of `key` still in its journal partition. */
  async function entriesFor(key: string): Promise<JournalEntry[]> {
    const found: JournalEntry[] = [];
    for (let partition = 0; partition < journal.partitions; partition++) {
      const raw = await stack.cluster.xrange(`bc:{journal-${partition}}`, '-', '+');
      for (const [id, fields] of raw) {
        const field = (name: string) => fields[fields.indexOf(name) + 1] ?? '';
        if (field('key') === key) {
          found.push({
            partition,
            id,
            key,
            generation: field('gen'),
            appendedAt: Number(id.split('-')[0]),
            token: field('tok'),
          });
        }
      }
    }
    return found;
  }
});
