/**
 * Drives a reconciler as the controller would (its requeues, capped at a second so tests
 * stay short) until the BlobCache it reads back satisfies `done`; what ends each round is
 * that status, read from the API server, not the pause.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobCache } from '../../operator/src/api/v1alpha1/types.generated.ts';

export async function reconcileUntil(
  run: () => Promise<{ requeueAfterMs?: number }>,
  read: () => Promise<BlobCache>,
  what: string,
  done: (cache: BlobCache) => boolean | Promise<boolean>,
): Promise<string[]> {
  const seen: string[] = [];
  for (let round = 0; round < 120; round++) {
    const result = await run().catch(() => ({ requeueAfterMs: 500 }));
    const current = await read();
    const operation = current.status?.operation;
    if (operation !== undefined) seen.push(`${operation.type}/${operation.step}`);
    if (await done(current)) return seen;
    await sleep(Math.min(result.requeueAfterMs ?? 1_000, 1_000));
  }
  throw new Error(
    `Timed out reconciling until ${what}; operations seen: ${seen.slice(-10).join(', ')}`,
  );
}
