/** Lookups in flight at once when answering `POST /v1/blobs/missing`. */
const LOOKUP_CONCURRENCY = 32;

/**
 * The keys `lookup` finds nothing for, in request order, with at most 32 lookups in
 * flight (a list may hold thousands of keys; the tiers should not see them all at once).
 */
export async function findMissing(
  keys: readonly string[],
  lookup: (key: string) => Promise<unknown>,
): Promise<string[]> {
  const absent: string[] = [];
  for (let i = 0; i < keys.length; i += LOOKUP_CONCURRENCY) {
    const batch = keys.slice(i, i + LOOKUP_CONCURRENCY);
    const found = await Promise.all(batch.map(lookup));
    batch.forEach((key, index) => {
      if (found[index] === null) absent.push(key);
    });
  }
  return absent;
}
