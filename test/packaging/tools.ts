/**
 * The packaging tests' tools, installed into the test cache by scripts/testenv (each
 * script prints the binary's path, building or downloading it first when missing).
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../harness/dataplane.ts';

export const CHART = join(REPO_ROOT, 'charts/blobcache-operator');

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function toolPath(script: string): string {
  const result = spawnSync('bash', [join(REPO_ROOT, 'scripts/testenv', script)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const path = result.stdout.trim().split('\n').pop();
  if (result.status !== 0 || path === undefined || path === '') {
    throw new Error(`scripts/testenv/${script} failed`);
  }
  return path;
}

const cache = new Map<string, string>();
function tool(script: string): string {
  if (!cache.has(script)) cache.set(script, toolPath(script));
  return cache.get(script)!;
}

export const helmBinary = () => tool('build-helm.sh');
export const promtoolBinary = () => tool('build-promtool.sh');
export const hadolintBinary = () => tool('install-hadolint.sh');

export function run(command: string, args: string[], options: SpawnSyncOptions = {}): RunResult {
  const result = spawnSync(command, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
  });
  if (result.error !== undefined) throw result.error;
  return {
    status: result.status,
    stdout: String(result.stdout),
    stderr: String(result.stderr),
  };
}

export function helm(...args: string[]): RunResult {
  return run(helmBinary(), args);
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** `helm template` of the chart with extra arguments; fails the test on a render error. */
export function renderChart(...args: string[]): Manifest[] {
  const result = helm(
    'template',
    'blobcache-operator',
    CHART,
    '--namespace',
    'blobcache-system',
    ...args,
  );
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

export function find(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find(
    (manifest) => manifest.kind === kind && (name === undefined || manifest.metadata.name === name),
  );
  if (found === undefined) throw new Error(`No ${kind}${name ? ` ${name}` : ''} in the chart`);
  return found;
}
