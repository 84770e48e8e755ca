import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from './dataplane.ts';

export interface BackfillRun {
  code: number | null;
  /** stdout and stderr, line by line, in order of arrival. */
  lines: string[];
}

/** The node arguments of `npm run backfill`, read from package.json so tests run exactly that. */
async function backfillArguments(): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: { backfill: string };
  };
  const [command, ...args] = manifest.scripts.backfill.split(/\s+/);
  if (command !== 'node') throw new Error(`npm run backfill runs '${command}', not node`);
  return args;
}

/**
 * Runs the backfill command as `npm run backfill -- ...args` does, with `env` as its whole
 * environment, and waits for it to exit. `onLine` sees each line as it is printed.
 */
export async function runBackfill(
  env: Record<string, string>,
  args: string[],
  onLine?: (line: string) => void,
): Promise<BackfillRun> {
  const child = spawn(process.execPath, [...(await backfillArguments()), ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream): void => {
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        onLine?.(line);
      }
    });
    stream.on('end', () => {
      if (partial !== '') lines.push(partial);
    });
  };
  collect(child.stdout);
  collect(child.stderr);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  return { code, lines };
}
