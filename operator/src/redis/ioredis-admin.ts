import { Redis } from 'ioredis';
import {
  RedisCommandError,
  type ClusterNode,
  type NodeInspection,
  type RedisAdmin,
  type RedisEndpoint,
} from './admin.ts';
import { DROP_CACHED_BLOB_LUA } from './blob-layout.ts';
import { parseClusterNodes } from './cluster-nodes.ts';
import { parseInfo, parseInspection } from './info.ts';

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

export interface RedisAdminOptions {
  /** Connect timeout, and command timeout of everything but MIGRATE and WAIT. */
  timeoutMs: number;
  /**
   * Command timeout of MIGRATE and WAIT, which may run long by design: it must exceed the
   * MIGRATE timeout callers pass, or the operator gives up on a transfer still under way.
   * @default 30000
   */
  slowCommandTimeoutMs?: number;
}

interface AdminClient extends Redis {
  bcDropCachedBlob(manifest: Buffer): Promise<number>;
}

type Lane = 'fast' | 'slow';

/**
 * RedisAdmin over ioredis: plain (non-cluster) connections per node, made on first use,
 * never retried by ioredis itself (the reconcile loop is the retry), dropped on failure. A
 * second connection per node carries the slow commands (MIGRATE, WAIT) with their own
 * timeout, so one long transfer never makes a hung node look alive.
 */
export function makeRedisAdmin(options: RedisAdminOptions): RedisAdmin {
  const connections = new Map<string, { client: AdminClient; password?: string }>();
  const keyOf = (node: RedisEndpoint, lane: Lane) => `${node.host}:${node.port}/${lane}`;
  const drop = (key: string): void => {
    connections.get(key)?.client.disconnect();
    connections.delete(key);
  };
  const connection = async (node: RedisEndpoint, lane: Lane): Promise<AdminClient> => {
    const key = keyOf(node, lane);
    const existing = connections.get(key);
    if (existing !== undefined && existing.password === node.password) return existing.client;
    drop(key);
    const client = new Redis({
      host: node.host,
      port: node.port,
      ...(node.password === undefined ? {} : { password: node.password }),
      lazyConnect: true,
      connectTimeout: options.timeoutMs,
      commandTimeout:
        lane === 'fast' ? options.timeoutMs : (options.slowCommandTimeoutMs ?? 30_000),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    }) as AdminClient;
    client.defineCommand('bcDropCachedBlob', { numberOfKeys: 1, lua: DROP_CACHED_BLOB_LUA });
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
  const name = (node: RedisEndpoint) => `${node.host}:${node.port}`;

  /** Runs a command; connection failures drop the connection and pass through unchanged. */
  const run = async <T>(
    node: RedisEndpoint,
    command: string,
    act: (client: AdminClient) => Promise<T>,
    lane: Lane = 'fast',
  ): Promise<T> => {
    try {
      return await act(await connection(node, lane));
    } catch (error) {
      if (isUnreachable(error)) {
        drop(keyOf(node, lane));
        throw error;
      }
      if (error instanceof RedisCommandError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw new RedisCommandError(name(node), command, message, { cause: error });
    }
  };
  /**
   * Runs a read; a node that cannot be reached, or is still loading its data (a replica's
   * full sync), is null: not there yet.
   */
  const read = async <T>(
    node: RedisEndpoint,
    command: string,
    act: (client: AdminClient) => Promise<T>,
  ): Promise<T | null> => {
    try {
      return await run(node, command, act);
    } catch (error) {
      if (isUnreachable(error)) return null;
      if (error instanceof RedisCommandError && /LOADING/.test(error.message)) return null;
      throw error;
    }
  };
  /** Sends a pipeline and answers each command's error message (null when it succeeded). */
  const pipelined = async (
    client: AdminClient,
    commands: (string | number | Buffer)[][],
  ): Promise<{ errors: (string | null)[]; results: unknown[] }> => {
    const pipeline = client.pipeline();
    for (const [command, ...args] of commands) pipeline.call(String(command), ...args);
    const replies = (await pipeline.exec()) ?? [];
    return {
      errors: replies.map(([error]) => (error === null ? null : error.message)),
      results: replies.map(([, result]) => result),
    };
  };
  /** A command whose only answer is OK; its first two words name it in errors. */
  const ok = async (node: RedisEndpoint, ...command: (string | number)[]): Promise<void> => {
    const [first, ...args] = command;
    await run(node, command.slice(0, 2).join(' '), (client) => client.call(String(first), ...args));
  };

  return {
    clusterNodes: (node) =>
      read(node, 'CLUSTER NODES', async (client): Promise<ClusterNode[]> =>
        parseClusterNodes(String(await client.call('CLUSTER', 'NODES'))),
      ),
    inspect: (node) =>
      read(
        node,
        'CLUSTER NODES, CLUSTER INFO, INFO, DBSIZE',
        async (client): Promise<NodeInspection> => {
          const { errors, results } = await pipelined(client, [
            ['CLUSTER', 'NODES'],
            ['CLUSTER', 'INFO'],
            ['INFO', 'replication', 'memory'],
            ['DBSIZE'],
          ]);
          const failed = errors.find((error) => error !== null);
          if (failed !== undefined && failed !== null) throw new Error(failed);
          const [nodes, clusterInfo, info, keys] = results;
          return parseInspection({
            nodes: String(nodes),
            clusterInfo: String(clusterInfo),
            info: String(info),
            keys: Number(keys),
          });
        },
      ),
    replicationOffset: (node) =>
      read(node, 'INFO replication', async (client) => {
        const info = parseInfo(String(await client.call('INFO', 'replication')));
        const role = info.get('role');
        return Number(info.get(role === 'slave' ? 'slave_repl_offset' : 'master_repl_offset') ?? 0);
      }),
    meet: (node, peer) => ok(node, 'CLUSTER', 'MEET', peer.ip, peer.port),
    addSlots: (node, ranges) => ok(node, 'CLUSTER', 'ADDSLOTSRANGE', ...ranges.flat()),
    bumpEpoch: (node) => ok(node, 'CLUSTER', 'BUMPEPOCH'),
    replicate: (node, masterId) => ok(node, 'CLUSTER', 'REPLICATE', masterId),
    setSlots: (node, slots, state, nodeId) =>
      run(node, `CLUSTER SETSLOT ${state}`, async (client) => {
        const extra = state === 'STABLE' ? [] : [nodeId ?? ''];
        const { errors } = await pipelined(
          client,
          slots.map((slot) => ['CLUSTER', 'SETSLOT', slot, state, ...extra]),
        );
        return errors;
      }),
    countKeysInSlots: (node, slots) =>
      run(node, 'CLUSTER COUNTKEYSINSLOT', async (client) => {
        const { errors, results } = await pipelined(
          client,
          slots.map((slot) => ['CLUSTER', 'COUNTKEYSINSLOT', slot]),
        );
        const failed = errors.find((error) => error !== null);
        if (failed !== undefined && failed !== null) throw new Error(failed);
        return results.map(Number);
      }),
    keysInSlot: (node, slot, count) =>
      run(node, 'CLUSTER GETKEYSINSLOT', async (client) => {
        const keys = await client.callBuffer('CLUSTER', 'GETKEYSINSLOT', slot, count);
        return keys as Buffer[];
      }),
    memoryUsage: (node, keys) =>
      run(node, 'MEMORY USAGE', async (client) => {
        if (keys.length === 0) return [];
        const { results } = await pipelined(
          client,
          keys.map((key) => ['MEMORY', 'USAGE', key]),
        );
        return results.map((result) => Number(result ?? 0));
      }),
    migrate: (source, target, keys, migrate) =>
      run(
        source,
        'MIGRATE',
        async (client) => {
          const auth = migrate.password === undefined ? [] : ['AUTH', migrate.password];
          await client.call(
            'MIGRATE',
            target.host,
            target.port,
            '',
            0,
            migrate.timeoutMs,
            'REPLACE',
            ...auth,
            'KEYS',
            ...keys,
          );
        },
        'slow',
      ),
    dropCachedBlob: (node, manifestKey) =>
      run(node, 'EVALSHA (drop a cached blob)', async (client) => {
        return (await client.bcDropCachedBlob(manifestKey)) === 1;
      }),
    forget: (node, id) =>
      run(node, 'CLUSTER FORGET', async (client) => {
        try {
          await client.call('CLUSTER', 'FORGET', id);
        } catch (error) {
          // Already forgotten (or never known): what FORGET is for.
          if (error instanceof Error && /Unknown node/i.test(error.message)) return;
          throw error;
        }
      }),
    failover: (node, mode) =>
      ok(node, 'CLUSTER', 'FAILOVER', ...(mode === undefined ? [] : [mode])),
    reset: (node) =>
      run(node, 'CLUSTER RESET HARD', async (client) => {
        try {
          // A replica flushes its data itself (it refuses FLUSHALL: read-only).
          await client.call('CLUSTER', 'RESET', 'HARD');
        } catch (error) {
          // A master with keys refuses; the keys of a node being reset are not wanted.
          if (!(error instanceof Error) || !/containing keys/.test(error.message)) throw error;
          await client.call('FLUSHALL');
          await client.call('CLUSTER', 'RESET', 'HARD');
        }
      }),
    get: (node, key) =>
      run(node, 'GET', async (client) => {
        const value = (await client.call('GET', key)) as string | null;
        return value;
      }),
    setIfAbsent: (node, key, value, wait) =>
      run(
        node,
        'SET NX, WAIT',
        async (client) => {
          const { errors, results } = await pipelined(client, [
            ['SET', key, value, 'NX'],
            ['GET', key],
            ['WAIT', wait.replicas, wait.timeoutMs],
          ]);
          const failed = errors.find((error) => error !== null);
          if (failed !== undefined && failed !== null) throw new Error(failed);
          return { value: String(results[1]), acknowledged: Number(results[2]) };
        },
        'slow',
      ),
    async close() {
      await Promise.allSettled(
        [...connections.values()].map(({ client }) => client.quit().catch(() => undefined)),
      );
      for (const key of [...connections.keys()]) drop(key);
    },
  };
}
