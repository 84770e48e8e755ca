import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it yields a value (anything but null, undefined or false) and returns
 * it; a check that throws counts as not yet. Fails naming `what` after `timeoutMs`.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | null | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const { timeoutMs = 30_000, intervalMs = 200 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => null);
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}
