/** Running the machine's tools (ip, iptables, sysctl, ...) and the cluster's own processes. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  timeoutMs?: number;
  input?: string;
  cwd?: string;
}

/** Runs a command to completion; never throws. */
export function attempt(
  command: string,
  args: readonly string[],
  options: CommandOptions = {},
): CommandResult {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    cwd: options.cwd,
    timeout: options.timeoutMs ?? 60_000,
    input: options.input,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: `${result.stderr ?? ''}${result.error === undefined ? '' : String(result.error)}`,
  };
}

/** Runs a command to completion and returns its stdout; throws with its stderr on failure. */
export function run(
  command: string,
  args: readonly string[],
  options: CommandOptions = {},
): string {
  const result = attempt(command, args, options);
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited with ${result.status}: ${result.stderr.trim()}`,
    );
  }
  return result.stdout;
}

/** A long-running process with stdout and stderr appended to `logFile`. */
export function startDaemon(
  command: string,
  args: readonly string[],
  logFile: string,
  env?: NodeJS.ProcessEnv,
): ChildProcess {
  const log = openSync(logFile, 'a');
  try {
    return spawn(command, args, { stdio: ['ignore', log, log], env: env ?? process.env });
  } finally {
    closeSync(log);
  }
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stopDaemon(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const cancel = new AbortController();
  const forced = sleep(graceMs, undefined, { signal: cancel.signal }).then(
    () => child.kill('SIGKILL'),
    () => undefined,
  );
  child.kill('SIGTERM');
  await exited;
  cancel.abort();
  await forced;
}

/** SIGKILL, as when the machine under a process goes away; resolves once it has exited. */
export async function killDaemon(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
