import type { RedisAdmin } from '../../operator/src/redis/admin.ts';

/**
 * For reconcile tests without Redis pods (an API server alone runs none): any question to
 * Redis is a test failure.
 */
export const noRedis: RedisAdmin = new Proxy({} as RedisAdmin, {
  get(_target, method) {
    if (method === 'close') return () => Promise.resolve();
    return (node: { host?: string } | undefined) =>
      Promise.reject(
        new Error(`no Redis was expected to be asked, but ${String(method)} went to ${node?.host}`),
      );
  },
});
