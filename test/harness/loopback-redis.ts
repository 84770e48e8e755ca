/**
 * Redis pods on loopback for the cluster tests: each node a real redis-server started
 * through the node start script (as the operator's StatefulSets start them), on an address
 * of its own (127.x.y.z) standing for a pod IP, announcing that address as its IP and
 * hostname. Nodes are described as RedisPod records (name, shard, ordinal, IP, zone), the
 * way the membership phase describes real pods to the planner. Nothing is clustered here:
 * the operator's membership code does that.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RedisPod } from '../../operator/src/redis/model.ts';
import { clusterNodeArgs } from '../../operator/src/redis/node-settings.ts';
import { eventually } from './eventually.ts';
import { REDIS_NODE_START_SCRIPT, requireCommand } from './services.ts';

const run = promisify(execFile);

export interface LoopbackOptions {
  dir: string;
  password: string;
  /** maxmemory of each node. @default '256mb' */
  maxMemory?: string;
  /** cluster-node-timeout. @default 2000 */
  nodeTimeoutMs?: number;
  /** The zone of a pod's node. @default none */
  zoneOf?: (shard: number, ordinal: number) => string | undefined;
}

interface Node {
  record: RedisPod;
  dir: string;
  process: ChildProcess;
}

function free(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export class LoopbackRedis {
  readonly port: number;
  readonly password: string;
  readonly nodeTimeoutMs: number;
  private readonly options: LoopbackOptions;
  private readonly subnet: string;
  private host = 10;
  private generation = 0;
  private readonly nodes = new Map<string, Node>();

  private constructor(options: LoopbackOptions, subnet: string, port: number) {
    this.options = options;
    this.subnet = subnet;
    this.port = port;
    this.password = options.password;
    this.nodeTimeoutMs = options.nodeTimeoutMs ?? 2_000;
  }

  static async create(options: LoopbackOptions): Promise<LoopbackRedis> {
    requireCommand('redis-server', 'install the Debian package redis-server (see .ci/run)');
    await mkdir(options.dir, { recursive: true });
    // A /16 of loopback of its own (127.64.0.0-127.191.255.255), so parallel runs and other
    // tests on 127.0.0.x never share an address; one port for every node, as in a cluster.
    const subnet = `127.${64 + Math.floor(Math.random() * 128)}.${Math.floor(Math.random() * 256)}`;
    const port = 20_000 + Math.floor(Math.random() * 5_000);
    return new LoopbackRedis(options, subnet, port);
  }

  /** The pods as the planner gets them. */
  records(): RedisPod[] {
    return [...this.nodes.values()].map((node) => ({ ...node.record }));
  }

  record(name: string): RedisPod {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`No pod ${name}`);
    return { ...node.record };
  }

  /** `ip:port,...` of the running nodes (the data plane's startup nodes). */
  nodeList(): string {
    return this.records()
      .map((pod) => `${pod.ip}:${pod.port}`)
      .join(',');
  }

  private async nextAddress(): Promise<string> {
    for (;;) {
      const ip = `${this.subnet}.${this.host++}`;
      if (this.host > 250) throw new Error('Out of loopback addresses');
      if ((await free(ip, this.port)) && (await free(ip, this.port + 10_000))) return ip;
    }
  }

  private launch(record: RedisPod, dir: string): ChildProcess {
    const log = openSync(join(dir, '..', `${record.name}.log`), 'a');
    const child = spawn(
      'sh',
      [
        REDIS_NODE_START_SCRIPT,
        '--port',
        String(record.port),
        '--bind',
        record.ip!,
        // Replication and bus connections leave from the pod's own address too.
        '--bind-source-addr',
        record.ip!,
        '--dir',
        dir,
        '--cluster-announce-ip',
        record.ip!,
        '--cluster-announce-hostname',
        record.ip!,
        ...clusterNodeArgs(this.nodeTimeoutMs),
        '--maxmemory',
        this.options.maxMemory ?? '256mb',
        '--maxmemory-policy',
        'volatile-lru',
        '--proto-max-bulk-len',
        '512mb',
        '--client-output-buffer-limit',
        'replica',
        '256mb',
        '0',
        '0',
      ],
      {
        stdio: ['ignore', log, log],
        env: { PATH: process.env.PATH ?? '', REDIS_PASSWORD: this.password },
      },
    );
    closeSync(log);
    return child;
  }

  /** Runs redis-cli against a pod (its password in the environment, not on the command line). */
  async cli(name: string, ...args: string[]): Promise<string> {
    const { ip, port } = this.record(name);
    const { stdout } = await run('redis-cli', ['-h', ip!, '-p', String(port), ...args], {
      env: { PATH: process.env.PATH ?? '', REDISCLI_AUTH: this.password },
    });
    return stdout;
  }

  private async answering(name: string): Promise<void> {
    await eventually(
      `redis ${name} to answer`,
      async () => (await this.cli(name, 'PING')).includes('PONG'),
      { timeoutMs: 60_000, intervalMs: 50 },
    );
  }

  /** Starts new, empty pods: `count` pods of a shard, ordinals from `first`. */
  async addPods(shard: number, count: number, first = 0): Promise<RedisPod[]> {
    const started: RedisPod[] = [];
    for (let ordinal = first; ordinal < first + count; ordinal++) {
      const name = `cache-redis-${shard}-${ordinal}`;
      const zone = this.options.zoneOf?.(shard, ordinal);
      const record: RedisPod = {
        name,
        shard,
        ordinal,
        ip: await this.nextAddress(),
        port: this.port,
        ...(zone === undefined ? {} : { zone }),
        terminating: false,
      };
      const dir = join(this.options.dir, `${name}.${this.generation++}`);
      await mkdir(dir, { recursive: true });
      this.nodes.set(name, { record, dir, process: this.launch(record, dir) });
      started.push(record);
    }
    await Promise.all(started.map((pod) => this.answering(pod.name)));
    return started;
  }

  private async killNode(node: Node): Promise<void> {
    const child = node.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGKILL, the pod keeps its address (a crashed container, not yet restarted). */
  async kill(name: string): Promise<void> {
    await this.killNode(this.nodes.get(name)!);
  }

  /** A container restart: SIGKILL, then the start script again with the same directory and address. */
  async restartInPlace(name: string): Promise<void> {
    const node = this.nodes.get(name)!;
    await this.killNode(node);
    node.process = this.launch(node.record, node.dir);
    await this.answering(name);
  }

  /** A rescheduled pod: SIGKILL, then a new empty node under the same name on a new address. */
  async replace(name: string): Promise<RedisPod> {
    const node = this.nodes.get(name)!;
    await this.killNode(node);
    node.record = { ...node.record, ip: await this.nextAddress() };
    node.dir = join(this.options.dir, `${name}.${this.generation++}`);
    await mkdir(node.dir, { recursive: true });
    node.process = this.launch(node.record, node.dir);
    await this.answering(name);
    return { ...node.record };
  }

  /** Every pod at once rescheduled (a node-pool upgrade): all killed, all back empty elsewhere. */
  async replaceAll(): Promise<void> {
    const names = [...this.nodes.keys()];
    await Promise.all(names.map((name) => this.killNode(this.nodes.get(name)!)));
    for (const name of names) {
      const node = this.nodes.get(name)!;
      node.record = { ...node.record, ip: await this.nextAddress() };
      node.dir = join(this.options.dir, `${name}.${this.generation++}`);
      await mkdir(node.dir, { recursive: true });
      node.process = this.launch(node.record, node.dir);
    }
    await Promise.all(names.map((name) => this.answering(name)));
  }

  /** Deletes a pod for good (a StatefulSet scaled down). */
  async deletePod(name: string): Promise<void> {
    await this.killNode(this.nodes.get(name)!);
    this.nodes.delete(name);
  }

  /** Deletes a shard's pods (what pruning its StatefulSet does). */
  async deleteShard(shard: number): Promise<void> {
    for (const [name, node] of [...this.nodes]) {
      if (node.record.shard !== shard) continue;
      await this.killNode(node);
      this.nodes.delete(name);
    }
  }

  /**
   * `redis-cli --cluster check` from one pod: Redis's own judgement. Clean means exit code 0,
   * every node agreeing, all slots covered, and no warning (open slots are warnings).
   */
  async check(): Promise<{ clean: boolean; output: string }> {
    const pod = this.records()[0]!;
    const result = await run('redis-cli', ['--cluster', 'check', `${pod.ip}:${pod.port}`], {
      env: { PATH: process.env.PATH ?? '', REDISCLI_AUTH: this.password, TERM: 'dumb' },
    }).then(
      ({ stdout }) => ({ code: 0, output: stdout }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({
        code: error.code ?? 1,
        output: `${error.stdout ?? ''}${error.stderr ?? ''}`,
      }),
    );
    const clean =
      result.code === 0 &&
      result.output.includes('[OK] All nodes agree about slots configuration.') &&
      result.output.includes('[OK] All 16384 slots covered.') &&
      !/^\[(WARNING|ERR)\]/m.test(result.output);
    return { clean, output: result.output };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((node) => this.killNode(node)));
    this.nodes.clear();
    await rm(this.options.dir, { recursive: true, force: true });
  }
}
