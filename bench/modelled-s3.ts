/**
 * An S3 server behind a modelled network link: versitygw runs in a network namespace the
 * benchmark creates, reached over a point-to-point link that delays every packet and paces
 * every TCP connection (bench/link-emulator, a user-space stand-in for `tc netem`, which
 * this kernel lacks: see docs/decisions/0070). Everything made here is undone by `stop()`,
 * and a later run removes what a killed run left (namespaces named after a dead pid).
 */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BUCKET, s3Client } from '../test/harness/production.ts';
import { startS3Server, type S3ServerHandle } from '../test/harness/services.ts';
import { mustUndo } from './cleanup.ts';

/**
 * The link between a pod and S3 (docs/decisions/0070): the S3 User Guide's "one concurrent
 * request for each 85–90 MB/s" sets the per-connection pace; the delay is the issue's 10 ms
 * each way, below the 100–200 ms small-object latency AWS's 2019 performance whitepaper is
 * quoted for, so the model errs in S3's favour.
 */
export interface LinkModel {
  /** Each packet's one-way delay. @default 10 */
  oneWayDelayMs: number;
  /** Pace of each TCP connection, each way (85–90 MB/s per S3 request). @default 90 */
  connectionMegabytesPerSecond: number;
  /** MTU of the link: traffic leaving a VPC, as S3's does, is held to 1500. @default 1500 */
  mtu: number;
}

export const DEFAULT_LINK_MODEL: LinkModel = {
  oneWayDelayMs: 10,
  connectionMegabytesPerSecond: 90,
  mtu: 1500,
};

export const LINK_EMULATOR = join(homedir(), '.cache', 'blobcache', 'bench', 'link-emulator');

export interface ModelledS3 {
  endpoint: string;
  server: S3ServerHandle;
  model: LinkModel;
  /**
   * GET requests of objects whose key includes `fragment`, from the server's access log;
   * only those whose User-Agent includes `userAgent`, if given (it tells the clients apart).
   */
  gets(fragment: string, userAgent?: string): number;
  /** Requests by S3 operation (GetObject, HeadObject, ...) naming `fragment`, likewise. */
  operations(fragment: string, userAgent?: string): Record<string, number>;
  /** Undoes everything (idempotent); returns what the link forwarded and dropped. */
  stop(): Promise<Record<string, number>>;
}

const NAMESPACE_PREFIX = 'bcbench-';

function ip(...args: string[]): string {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills what runs in a namespace and deletes it. */
function removeNamespace(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout;
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
  spawnSync('ip', ['netns', 'del', name]);
}

/** Namespaces of benchmark runs that died before cleaning up (their pid is gone). */
function removeStaleNamespaces(): void {
  for (const line of spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const pid = Number(name.slice(NAMESPACE_PREFIX.length));
    if (name.startsWith(NAMESPACE_PREFIX) && pid > 0 && !alive(pid)) removeNamespace(name);
  }
}

/** A /30 of 10.215.0.0/16 (other harnesses here use 10.213) that no route uses yet. */
function freeSubnet(): string {
  const routes = ip('-4', 'route', 'show', 'table', 'all');
  for (let attempt = 0; attempt < 64; attempt++) {
    const third = (process.pid + attempt) % 256;
    const prefix = `10.215.${third}.`;
    if (!routes.includes(prefix)) return prefix;
  }
  throw new Error('No free 10.215.x.0/30 for the modelled S3 link');
}

/** versitygw's access log names each request's operation as `s3_<Operation>`. */
function operationsIn(
  accessLog: string,
  fragment: string,
  userAgent?: string,
): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!existsSync(accessLog)) return counts;
  for (const line of readFileSync(accessLog, 'utf8').split('\n')) {
    const operation = / s3_(\w+) /.exec(line)?.[1];
    if (
      operation !== undefined &&
      line.includes(fragment) &&
      (userAgent === undefined || line.includes(userAgent))
    )
      counts[operation] = (counts[operation] ?? 0) + 1;
  }
  return counts;
}

export async function startModelledS3(
  dir: string,
  model: LinkModel = DEFAULT_LINK_MODEL,
): Promise<ModelledS3> {
  if (process.getuid?.() !== 0)
    throw new Error('The modelled S3 link needs root (network namespaces and TUN devices)');
  if (!existsSync(LINK_EMULATOR))
    throw new Error(`${LINK_EMULATOR} is missing: run bash bench/setup.sh`);
  removeStaleNamespaces();
  const namespace = `${NAMESPACE_PREFIX}${process.pid}`;
  const hostDevice = `bcb${process.pid}h`;
  const nsDevice = `bcb${process.pid}n`;
  const prefix = freeSubnet();
  const [hostAddress, nsAddress] = [`${prefix}1`, `${prefix}2`];
  let link: ChildProcess | undefined;
  let server: S3ServerHandle | undefined;
  let stopped: Promise<Record<string, number>> | undefined;
  const stopOnce = (): Promise<Record<string, number>> =>
    (stopped ??= (async () => {
      await server?.stop();
      let stats: Record<string, number> = {};
      if (link !== undefined && link.exitCode === null && link.signalCode === null) {
        const lines = createInterface({ input: link.stdout! });
        const last = new Promise<string>((resolve) => {
          let seen = '';
          lines.on('line', (line) => (seen = line));
          lines.once('close', () => resolve(seen));
        });
        link.kill('SIGTERM');
        stats = JSON.parse((await last) || '{}') as Record<string, number>;
      }
      // The TUN devices went with the emulator; the namespace is ours to delete.
      removeNamespace(namespace);
      return stats;
    })());
  const undo = mustUndo(stopOnce);
  const stop = async (): Promise<Record<string, number>> => {
    await undo();
    return stopOnce();
  };
  try {
    ip('netns', 'add', namespace);
    // Raised priority: a network does not queue behind the machine's CPU, so the emulator's
    // timers should not either (it uses little CPU itself). `nice` execs: the pid stays.
    link = spawn(
      'nice',
      [
        '-n',
        '-10',
        LINK_EMULATOR,
        '-host-dev',
        hostDevice,
        '-ns-dev',
        nsDevice,
        '-netns',
        `/run/netns/${namespace}`,
        '-delay',
        `${model.oneWayDelayMs}ms`,
        '-rate',
        String(model.connectionMegabytesPerSecond * 1e6),
      ],
      // Its stdin is a pipe from this process: when this process dies, the link ends.
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const running = link;
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: running.stdout! });
      lines.once('line', (line) =>
        line === 'ready' ? resolve() : reject(new Error(`link-emulator said ${line}`)),
      );
      running.once('exit', (code) => reject(new Error(`link-emulator exited with ${code}`)));
    });
    ip('addr', 'add', hostAddress, 'peer', nsAddress, 'dev', hostDevice);
    ip('link', 'set', hostDevice, 'mtu', String(model.mtu), 'up');
    ip('-n', namespace, 'addr', 'add', nsAddress, 'peer', hostAddress, 'dev', nsDevice);
    ip('-n', namespace, 'link', 'set', nsDevice, 'mtu', String(model.mtu), 'up');
    ip('-n', namespace, 'link', 'set', 'lo', 'up');
    const accessLog = join(dir, 'access.log');
    server = await startS3Server({ dir, host: nsAddress, netns: namespace, accessLog });
    const client = s3Client(server.endpoint);
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    return {
      endpoint: server.endpoint,
      server,
      model,
      gets: (fragment, userAgent) => operationsIn(accessLog, fragment, userAgent).GetObject ?? 0,
      operations: (fragment, userAgent) => operationsIn(accessLog, fragment, userAgent),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
