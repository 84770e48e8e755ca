import { Readable } from 'node:stream';
import type { RedisFastTier } from '../../dataplane/src/redis/fast-tier.ts';
import type { Journal, JournalEntry } from '../../dataplane/src/redis/journal.ts';
import { md5 } from './blobs.ts';

/**
 * Stages and publishes `blob` as an acknowledged write-behind upload leaves it: pending in
 * Redis under a new journal entry, marked published, not yet in the durable tier.
 */
export async function publishAcknowledged(
  tiers: { fast: RedisFastTier; journal: Journal },
  blob: Buffer,
  generation: string,
): Promise<JournalEntry> {
  const { fast, journal } = tiers;
  const entry = await journal.append(md5(blob), generation);
  const staged = await fast.stage(md5(blob), Readable.from([blob], { objectMode: false }), {
    size: blob.length,
  });
  const outcome = await fast.publish(staged, {
    generation,
    state: 'pending',
    ttlMs: 0,
    persistToken: entry.token,
  });
  if (outcome !== 'published') throw new Error(`The blob was not published: ${outcome}`);
  await journal.markPublished(entry);
  return entry;
}
