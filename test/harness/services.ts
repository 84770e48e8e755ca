/**
 * Starts the real services of the production tiers on loopback: a Redis Cluster of
 * redis-server processes (3 masters + 3 replicas) and versitygw, an S3 gateway over a
 * directory. Used by the integration tests and by `npm run dev:services`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const TESTENV_DIR =
  process.env.BLOBCACHE_TESTENV_DIR ?? join(homedir(), '.cache', 'blobcache', 'testenv');
export const VERSITYGW_VERSION = 'v1.7.0';
export const S3_ACCESS_KEY = 'blobcache-test';
export const S3_SECRET_KEY = 'blobcache-test-secret';
export const S3_REGION = 'us-east-1';

/** The versitygw binary, built from the Go module proxy into the test cache when missing. */
export function versitygwBinary(): string {
  const binary = join(TESTENV_DIR, 'bin', 'versitygw');
  if (existsSync(binary)) return binary;
  const result = spawnSync(
    'go',
    ['install', `github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}`],
    {
      env: { ...process.env, GOBIN: join(TESTENV_DIR, 'bin'), GOFLAGS: '-trimpath' },
      stdio: 'inherit',
    },
  );
  if (result.status !== 0 || !existsSync(binary)) {
    throw new Error(
      `Could not build versitygw ${VERSITYGW_VERSION} with go install (is Go installed?)`,
    );
  }
  return binary;
}

export function requireCommand(command: string, hint: string): void {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0) {
    throw new Error(`${command} is not installed: ${hint}`);
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A run of `count` free ports (and, for Redis, their cluster-bus ports at +10000). */
export async function freePorts(count: number, withBus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 5_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const all = withBus ? [...ports, ...ports.map((port) => port + 10_000)] : ports;
    const free = await Promise.all(all.map(portFree));
    if (free.every(Boolean)) return base;
  }
  throw new Error('No free port range found');
}

interface ProcessOptions {
  /** Detach and leave running after this process exits (dev services). */
  detached?: boolean;
  logFile: string;
}

function startProcess(command: string, args: string[], options: ProcessOptions): ChildProcess {
  const log = openSync(options.logFile, 'a');
  const child = spawn(command, args, {
    stdio: ['ignore', log, log],
    detached: options.detached === true,
  });
  if (options.detached === true) child.unref();
  return child;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await sleep(100);
  }
}

function redisCli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
  });
  return `${result.stdout}${result.stderr}`;
}

export interface RedisNode {
  port: number;
  process: ChildProcess;
}

export interface RedisClusterHandle {
  nodes: RedisNode[];
  /** `127.0.0.1:port,...` as `BLOBCACHE_REDIS_NODES` wants it. */
  nodeList: string;
  /** Ports of the current masters. */
  masters(): number[];
  /** The node's role as it reports it (`master`, `slave`), or '' when it does not answer. */
  role(port: number): string;
  /** A section of the node's INFO, as text. */
  info(port: number, section: string): string;
  /** SIGKILLs one node. */
  kill(port: number): void;
  /**
   * A container restart: SIGKILLs the node and starts it again at once through the node
   * start script, with the same directory (its nodes.conf kept). Resolves with the time
   * from the kill to the new start, once the node answers again.
   */
  restartInPlace(port: number): Promise<{ restartedAfterMs: number }>;
  /** A replaced pod: starts a killed node with an empty directory and re-attaches it. */
  replace(port: number): Promise<void>;
  /** Waits until every node agrees the cluster is ok. */
  waitHealthy(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  dir: string;
  basePort?: number;
  /** Per node, e.g. '1gb'. */
  maxMemory?: string;
  detached?: boolean;
}

/** Starts every Redis node, in the tests as in the operator's StatefulSets. */
export const REDIS_NODE_START_SCRIPT = join(
  new URL('../../', import.meta.url).pathname,
  'scripts/redis-node/start.sh',
);

/** How far a replica may fall behind before its master cuts it off (1 GiB: large blobs burst). */
const REPLICA_BUFFER_LIMIT = '1gb';

/** Six redis-server processes in cluster mode on loopback: 3 masters, 3 replicas. */
export async function startRedisCluster(options: RedisClusterOptions): Promise<RedisClusterHandle> {
  requireCommand('redis-server', 'install the Debian package redis-server (see .ci/run)');
  const base = options.basePort ?? (await freePorts(6, true));
  const ports = Array.from({ length: 6 }, (_, i) => base + i);
  await mkdir(options.dir, { recursive: true });
  const launch = (port: number, wipe: boolean): ChildProcess => {
    const dir = join(options.dir, String(port));
    spawnSync('mkdir', ['-p', dir]);
    if (wipe) spawnSync('rm', ['-f', join(dir, 'nodes.conf')]);
    // Through the same start script the operator's StatefulSets run: it adds cluster mode,
    // nodes.conf in --dir and no persistence, and guards restarts in place.
    return startProcess(
      'sh',
      [
        REDIS_NODE_START_SCRIPT,
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-node-timeout',
        '2000',
        '--dir',
        dir,
        '--maxmemory',
        options.maxMemory ?? '2gb',
        '--maxmemory-policy',
        'volatile-lru',
        '--proto-max-bulk-len',
        '512mb',
        // As the operator configures production shards (see redisShardStatefulSet).
        '--client-output-buffer-limit',
        'replica',
        REPLICA_BUFFER_LIMIT,
        '0',
        '0',
        '--repl-backlog-size',
        '64mb',
      ],
      { detached: options.detached, logFile: join(options.dir, `redis-${port}.log`) },
    );
  };
  const nodes: RedisNode[] = ports.map((port) => ({ port, process: launch(port, true) }));
  await waitFor('redis-server to listen', () =>
    ports.every((port) => redisCli(port, 'PING').includes('PONG')),
  );
  const created = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((port) => `127.0.0.1:${port}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  );
  if (created.status !== 0)
    throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  const alive = new Set(ports);
  const handle: RedisClusterHandle = {
    nodes,
    nodeList: ports.map((port) => `127.0.0.1:${port}`).join(','),
    masters: () => [...alive].filter((port) => redisCli(port, 'ROLE').startsWith('master')),
    role: (port) => redisCli(port, 'ROLE').split('\n')[0]?.trim() ?? '',
    info: (port, section) => redisCli(port, 'INFO', section),
    kill(port) {
      nodes.find((node) => node.port === port)?.process.kill('SIGKILL');
      alive.delete(port);
    },
    async restartInPlace(port) {
      const node = nodes.find((candidate) => candidate.port === port)!;
      const running = node.process.exitCode === null && node.process.signalCode === null;
      const exited = running
        ? new Promise((resolve) => node.process.once('exit', resolve))
        : Promise.resolve();
      const killedAt = Date.now();
      node.process.kill('SIGKILL');
      await exited;
      node.process = launch(port, false);
      alive.add(port);
      const restartedAfterMs = Date.now() - killedAt;
      await waitFor(
        `redis ${port} to answer after its restart`,
        () => redisCli(port, 'PING').includes('PONG'),
        60_000,
      );
      return { restartedAfterMs };
    },
    async replace(port) {
      const node = nodes.find((candidate) => candidate.port === port)!;
      node.process = launch(port, true);
      await waitFor(`redis ${port} to listen`, () => redisCli(port, 'PING').includes('PONG'));
      // A wiped node has forgotten the cluster: introduce it and make it a replica again
      // (what the operator does for a replaced pod).
      const peer = [...alive][0]!;
      redisCli(port, 'CLUSTER', 'MEET', '127.0.0.1', String(peer));
      alive.add(port);
      await waitFor(
        'the new node to learn the cluster',
        () => redisCli(port, 'CLUSTER', 'NODES').split('\n').length > 6,
      );
      const orphan = handle
        .masters()
        .find((master) => !redisCli(master, 'INFO', 'replication').includes('connected_slaves:1'));
      if (orphan !== undefined && orphan !== port) {
        const masterId = redisCli(orphan, 'CLUSTER', 'MYID').trim();
        redisCli(port, 'CLUSTER', 'REPLICATE', masterId);
      }
    },
    async waitHealthy() {
      await waitFor(
        'the Redis cluster to be ok',
        () =>
          [...alive].every((port) => {
            if (!redisCli(port, 'CLUSTER', 'INFO').includes('cluster_state:ok')) return false;
            const replication = redisCli(port, 'INFO', 'replication');
            return (
              !replication.includes('role:slave') || replication.includes('master_link_status:up')
            );
          }),
        30_000,
      );
    },
    async stop() {
      for (const node of nodes) node.process.kill('SIGKILL');
      await Promise.all(
        nodes.map((node) =>
          node.process.exitCode !== null || node.process.signalCode !== null
            ? Promise.resolve()
            : new Promise((resolve) => node.process.once('exit', resolve)),
        ),
      );
    },
  };
  await handle.waitHealthy();
  return handle;
}

export interface S3ServerHandle {
  endpoint: string;
  port: number;
  /** Process ids of the running server. */
  pids(): number[];
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** versitygw serving a directory over the S3 API on loopback (or on `host`). */
export async function startS3Server(options: {
  dir: string;
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  detached?: boolean;
  /** Run inside this network namespace (`ip netns exec`), e.g. behind a shaped link. */
  netns?: string;
  /** Write the server's access log (one line per request) to this file. */
  accessLog?: string;
}): Promise<S3ServerHandle> {
  const binary = versitygwBinary();
  const port = options.port ?? (await freePorts(1));
  await mkdir(join(options.dir, 'data'), { recursive: true });
  let child: ChildProcess | undefined;
  const host = options.host ?? '127.0.0.1';
  const endpoint = `http://${host}:${port}`;
  const handle: S3ServerHandle = {
    endpoint,
    port,
    pids: () => (child?.pid === undefined ? [] : [child.pid]),
    async start() {
      const args = [
        '--port',
        `${host}:${port}`,
        '--access',
        S3_ACCESS_KEY,
        '--secret',
        S3_SECRET_KEY,
        '--health',
        '/health',
        // Like a real S3 endpoint: keep connections open (versitygw closes every one by
        // default, costing a TCP handshake per request and piling up TIME_WAIT sockets),
        // and no request log on stdout.
        '--keep-alive',
        '--quiet',
        ...(options.accessLog === undefined ? [] : ['--access-log', options.accessLog]),
        'posix',
        join(options.dir, 'data'),
      ];
      // `ip netns exec` execs the server, so the child's pid stays the server's.
      const [command, ...prefix] =
        options.netns === undefined ? [binary] : ['ip', 'netns', 'exec', options.netns, binary];
      child = startProcess(command, [...prefix, ...args], {
        detached: options.detached,
        logFile: join(options.dir, 'versitygw.log'),
      });
      await waitFor('versitygw to answer', async () => {
        try {
          return (await fetch(`${endpoint}/health`)).status === 200;
        } catch {
          return false;
        }
      });
    },
    async stop() {
      const running = child;
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
      running.kill('SIGKILL');
      await new Promise((resolve) => running.once('exit', resolve));
    },
  };
  await handle.start();
  return handle;
}
