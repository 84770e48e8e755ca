import { Redis } from 'ioredis';
import type { ClusterNode, RedisAdmin, RedisEndpoint } from './admin.ts';
import { parseClusterNodes } from './cluster-nodes.ts';

const UNREACHABLE = [
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE/,
  /ENOTFOUND|EAI_AGAIN/,
  /Connection is closed/,
  /Command timed out/,
];

/**
 * True when a Redis node could not be talked to at all (down, unreachable, hung), as
 * opposed to a node that answered with an error (a wrong password, no cluster mode).
 */
export function isUnreachable(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return UNREACHABLE.some((pattern) => pattern.test(message));
}

/**
 * RedisAdmin over ioredis: one plain (non-cluster) connection per node, made on first use,
 * never retried by ioredis itself (the reconcile loop is the retry), dropped on failure.
 */
export function makeRedisAdmin(options: { timeoutMs: number }): RedisAdmin {
  const connections = new Map<string, { client: Redis; password?: string }>();
  const drop = (key: string): void => {
    connections.get(key)?.client.disconnect();
    connections.delete(key);
  };
  const connection = async (node: RedisEndpoint): Promise<Redis> => {
    const key = `${node.host}:${node.port}`;
    const existing = connections.get(key);
    if (existing !== undefined && existing.password === node.password) return existing.client;
    drop(key);
    const client = new Redis({
      host: node.host,
      port: node.port,
      ...(node.password === undefined ? {} : { password: node.password }),
      lazyConnect: true,
      connectTimeout: options.timeoutMs,
      commandTimeout: options.timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    // Without a listener ioredis would print errors. The last one says more than the
    // "Connection is closed" a failed connect() reports (e.g. WRONGPASS).
    let lastError: unknown;
    client.on('error', (error: unknown) => (lastError = error));
    client.on('end', () => {
      if (connections.get(key)?.client === client) connections.delete(key);
    });
    connections.set(key, { client, password: node.password });
    try {
      await client.connect();
    } catch (error) {
      drop(key);
      throw lastError ?? error;
    }
    return client;
  };
  return {
    async clusterNodes(node): Promise<ClusterNode[] | null> {
      try {
        const client = await connection(node);
        return parseClusterNodes(String(await client.call('CLUSTER', 'NODES')));
      } catch (error) {
        drop(`${node.host}:${node.port}`);
        if (isUnreachable(error)) return null;
        throw new Error(`Redis ${node.host}:${node.port} refused CLUSTER NODES`, { cause: error });
      }
    },
    async get(node, key) {
      try {
        const client = await connection(node);
        return await client.get(key);
      } catch (error) {
        drop(`${node.host}:${node.port}`);
        throw error;
      }
    },
    async close() {
      await Promise.allSettled(
        [...connections.values()].map(({ client }) => client.quit().catch(() => undefined)),
      );
      for (const key of [...connections.keys()]) drop(key);
    },
  };
}
