/** The real kubectl, as a user runs it, against the end-to-end cluster. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { K8S_BIN } from './layout.ts';

export interface KubectlOptions {
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
  timeoutMs?: number;
}

export class KubectlError extends Error {
  readonly stdout: string;
  readonly stderr: string;

  constructor(message: string, stdout: string, stderr: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KubectlError';
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

export class Kubectl {
  readonly kubeconfig: string;

  constructor(kubeconfig: string) {
    this.kubeconfig = kubeconfig;
  }

  /** Runs kubectl; resolves with stdout, rejects with a KubectlError carrying stderr. */
  run(args: readonly string[], options: KubectlOptions = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        join(K8S_BIN, 'kubectl'),
        ['--kubeconfig', this.kubeconfig, ...args],
        { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 180_000 },
        (error, stdout, stderr) => {
          if (error === null) resolve(stdout);
          else
            reject(
              new KubectlError(`kubectl ${args.join(' ')}: ${stderr.trim()}`, stdout, stderr, {
                cause: error,
              }),
            );
        },
      );
      // kubectl may have exited before its stdin is closed (a busy machine runs this late):
      // the EPIPE that gives is no failure of the command, whose outcome comes above.
      child.stdin?.on('error', () => undefined);
      if (options.input === undefined) child.stdin?.end();
      else child.stdin?.end(options.input);
    });
  }

  /** `kubectl apply` of objects (written as JSON, which kubectl reads as YAML). */
  async apply(...objects: object[]): Promise<void> {
    await this.run(['apply', '-f', '-'], {
      input: objects.map((object) => JSON.stringify(object)).join('\n---\n'),
    });
  }

  async json<T = unknown>(args: readonly string[]): Promise<T> {
    return JSON.parse(await this.run([...args, '-o', 'json'])) as T;
  }

  /** `kubectl exec` in a Pod's first container; resolves with stdout. */
  exec(namespace: string, pod: string, command: readonly string[]): Promise<string> {
    return this.run(['exec', '-n', namespace, pod, '--', ...command]);
  }
}
