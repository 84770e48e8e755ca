import type { ClusterNode, RedisAdmin } from '../../operator/src/redis/admin.ts';

/**
 * A RedisAdmin for reconcile tests, standing in for Redis pods that an API server alone
 * never runs: it answers CLUSTER NODES for each pod IP from `views` (absent: unreachable).
 */
export function stubRedis(views: Map<string, ClusterNode[]>): RedisAdmin & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    clusterNodes(node) {
      asked.push(node.host);
      return Promise.resolve(views.get(node.host) ?? null);
    },
    // The stubbed nodes hold no keys (no incarnation: no backfill).
    get: () => Promise.resolve(null),
    close: () => Promise.resolve(),
  };
}

/** For tests without Redis pods: any question to Redis is a test failure. */
export const noRedis: RedisAdmin = {
  clusterNodes(node) {
    return Promise.reject(new Error(`no Redis was expected to be asked, but ${node.host} was`));
  },
  get(node) {
    return Promise.reject(new Error(`no Redis was expected to be asked, but ${node.host} was`));
  },
  close: () => Promise.resolve(),
};

export function clusterNode(
  id: string,
  options: { myself?: boolean; slots?: [number, number][]; address?: string } = {},
): ClusterNode {
  return {
    id,
    address: options.address ?? `10.0.0.${id}:6379`,
    flags: options.myself === true ? ['myself', 'master'] : ['master'],
    masterId: null,
    configEpoch: 1,
    connected: true,
    slots: options.slots ?? [],
    migrating: [],
    importing: [],
  };
}
