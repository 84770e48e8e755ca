import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createHandler } from '../../dataplane/src/app.ts';
import { FileSystemStore } from '../../dataplane/src/backends/filesystem.ts';
import { MemoryLruStore } from '../../dataplane/src/backends/memory-lru.ts';
import { WriteThroughTiers } from '../../dataplane/src/blob/write-through.ts';
import { Metrics } from '../../dataplane/src/metrics.ts';
import { startServer, type RunningServer } from '../../dataplane/src/server.ts';
import { silentLogger } from './logger.ts';
import type { AuthTokens } from '../../dataplane/src/http/auth.ts';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;

export interface TestServer {
  url: string;
  dataDir: string;
  metrics: Metrics;
  cache: MemoryLruStore;
  store: FileSystemStore;
  running: RunningServer;
  stop(): Promise<void>;
}

export interface TestServerOptions {
  auth?: AuthTokens;
  maxBlobBytes?: number;
  memoryCacheBytes?: number;
  memoryCacheMaxEntryBytes?: number;
  isDraining?: () => boolean;
}

/** The real app on a real HTTP server on loopback, in this process, over a fresh directory. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'blobcache-test-'));
  const logger = silentLogger;
  const metrics = new Metrics();
  const cache = new MemoryLruStore({
    maxBytes: options.memoryCacheBytes ?? 16 * 1024 * 1024,
    maxEntryBytes: options.memoryCacheMaxEntryBytes ?? 4 * 1024 * 1024,
  });
  const store = await FileSystemStore.open(dataDir, {
    onQuarantine: () => metrics.quarantined.inc({ tier: 'durable' }),
  });
  const blobs = new WriteThroughTiers({ cache, store, metrics, logger });
  const app = createHandler({
    blobs,
    logger,
    metrics,
    auth: options.auth ?? {},
    maxBlobBytes: options.maxBlobBytes ?? 64 * 1024 * 1024,
    isDraining: options.isDraining,
  });
  const running = await startServer(app, {
    port: 0,
    host: '127.0.0.1',
    idleTimeoutMs: 10_000,
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 60_000,
    shutdownGraceMs: 2_000,
    maxConnections: 1024,
    logger,
    metrics,
  });
  return {
    url: `http://127.0.0.1:${running.address.port}`,
    dataDir,
    metrics,
    cache,
    store,
    running,
    async stop() {
      await running.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface SpawnedDataPlane {
  url: string;
  child: ChildProcess;
  /** Every JSON log line the process printed so far. */
  logs: Record<string, unknown>[];
  /** What the process wrote to stderr so far (nothing, normally: logs go to stdout). */
  stderr(): string;
  /** Waits for the process to exit and returns its exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const SOURCE_ENTRY = 'dataplane/src/main.ts';
const COMPILED_ENTRY = 'dist/dataplane/src/main.js';

/** The node arguments of `npm start`, read from package.json so tests run exactly that. */
async function startArguments(): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const [command, ...args] = manifest.scripts.start.split(/\s+/);
  if (command !== 'node') throw new Error(`npm start runs '${command}', not node`);
  return args;
}

export interface SpawnOptions {
  /**
   * Run the compiled build (`npm run build`) the container image runs, with the same node
   * flags, instead of the TypeScript sources `npm start` runs.
   */
  compiled?: boolean;
}

/** Runs the data plane exactly as `npm start` (or the image) does, in a process of its own. */
export async function spawnDataPlane(
  env: Record<string, string>,
  options: SpawnOptions = {},
): Promise<SpawnedDataPlane> {
  const args = (await startArguments()).map((arg) =>
    options.compiled === true && arg === SOURCE_ENTRY ? COMPILED_ENTRY : arg,
  );
  if (options.compiled === true && !existsSync(join(REPO_ROOT, COMPILED_ENTRY)))
    throw new Error(`${COMPILED_ENTRY} is missing: run npm run build first`);
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.message === 'Started the data plane') resolve(String(entry.url));
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) => reject(new Error(`The data plane exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    logs,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Peak and current resident set size of a process, from /proc (Linux). */
export async function residentSet(
  pid: number,
): Promise<{ peakBytes: number; currentBytes: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (match?.[1] === undefined) throw new Error(`No ${name} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { peakBytes: field('VmHWM'), currentBytes: field('VmRSS') };
}
