import type { ChainableCommander } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Errors that mean the slot moved or the cluster is reconfiguring: the command was not run
 * where it was sent (docs/decisions/0081).
 */
export const REDIRECTED = /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN) /;

/**
 * Runs a single-slot pipeline and returns each command's reply, rebuilding and resending it
 * while the cluster answers with redirections (a failover moved the slot). ioredis follows
 * `MOVED` for single commands but reports it per command in a pipeline.
 */
export async function execPipeline(
  build: () => ChainableCommander,
  options: { attempts?: number; delayMs?: number } = {},
): Promise<unknown[]> {
  const attempts = options.attempts ?? 30;
  for (let attempt = 1; ; attempt++) {
    const results = (await build().exec()) ?? [];
    const redirected = results.find(([error]) => error !== null && REDIRECTED.test(error.message));
    if (redirected === undefined || attempt >= attempts) {
      const failed = results.find(([error]) => error !== null);
      if (failed?.[0]) throw failed[0];
      return results.map(([, reply]) => reply);
    }
    await sleep(options.delayMs ?? 300);
  }
}
