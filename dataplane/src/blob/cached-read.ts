import { Readable } from 'node:stream';
import type { Logger } from 'winston';
import type { Metrics } from '../metrics.ts';
import { ChunkMissingError } from '../redis/errors.ts';
import type { Manifest, RedisFastTier } from '../redis/fast-tier.ts';
import type { BlobStore, ByteRange } from './store.ts';
import { verifiedRead } from './verified-read.ts';

/**
 * Streams a blob (or `range` of it) from Redis; if a chunk turns out to be gone (evicted,
 * or lost in a failover), continues from the durable tier at the same offset, so the
 * client never gets a partial blob, and drops the broken copy so the next read fills it
 * again. The continuation reads the whole object and verifies it against the key, holding
 * its last bytes back until it matched: the chunks were verified when stored, the durable
 * tier's bytes are not.
 */
export function readCached(
  deps: { fast: RedisFastTier; store: BlobStore; metrics: Metrics; logger: Logger },
  manifest: Manifest,
  range?: ByteRange,
): Readable {
  const { fast, store, metrics, logger } = deps;
  const start = range?.start ?? 0;
  const end = range?.end ?? manifest.size - 1;
  async function* bytes(): AsyncGenerator<Buffer> {
    let offset = start;
    try {
      for await (const chunk of fast.read(manifest, range) as AsyncIterable<Buffer>) {
        offset += chunk.length;
        yield chunk;
      }
      return;
    } catch (error) {
      if (!(error instanceof ChunkMissingError)) throw error;
      metrics.fills.inc({ result: 'chunk-missing' });
      logger.warn('Found a cached blob incomplete; continuing from the durable tier', {
        key: manifest.key,
        offset,
      });
    }
    if (manifest.state === 'cached') await fast.dropCopy(manifest).catch(() => undefined);
    const rest = await store.get(manifest.key);
    if (rest === null) throw new Error(`Blob ${manifest.key} is in neither tier any more`);
    yield* verifiedRead(
      rest.stream,
      { key: manifest.key, size: manifest.size },
      { start: offset, end },
    ) as AsyncIterable<Buffer>;
  }
  return Readable.from(bytes(), { objectMode: false });
}
