/** Side-by-side references started on loopback: nginx over the same blobs as files. */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Nginx {
  url: string;
  root: string;
  stop(): Promise<void>;
}

/** nginx with one worker (like one data-plane process), sendfile on, serving `root`. */
export async function startNginx(dir: string, port: number): Promise<Nginx> {
  const root = join(dir, 'www');
  await mkdir(root, { recursive: true });
  // nginx's workers drop root privileges: let them into the (mkdtemp, 0700) folders.
  for (const folder of [join(dir, '..'), dir, root]) chmodSync(folder, 0o755);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')};
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${dir};
  proxy_temp_path ${dir};
  fastcgi_temp_path ${dir};
  uwsgi_temp_path ${dir};
  scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; root ${root}; location / { } }
}
`,
  );
  const child: ChildProcess = spawn('/usr/sbin/nginx', ['-c', conf, '-p', dir], {
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (
      await fetch(`${url}/`).then(
        () => true,
        () => false,
      )
    )
      break;
    await sleep(100);
  }
  return {
    url,
    root,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds a set of processes (e.g. every Redis server) spends while `work` runs. */
export async function cpuSecondsDuring<T>(
  pids: readonly number[],
  work: () => Promise<T>,
): Promise<{ result: T; cpuSeconds: number }> {
  const total = (): number => pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
  const before = total();
  const result = await work();
  return { result, cpuSeconds: total() - before };
}

const toMiB = (kilobytes: number): number => Math.round((kilobytes / 1024) * 10) / 10;

/** CPU time and peak memory of one process over a measured run (Linux /proc). */
export class ProcessSampler {
  private readonly pid: number;
  private cpuStart = 0;
  private wallStart = 0;
  private startRssMiB = 0;

  constructor(pid: number) {
    this.pid = pid;
  }

  private cpuSeconds(): number {
    return cpuSecondsOf(this.pid);
  }

  start(): void {
    // Writing 5 resets the peak RSS (VmHWM) to the current RSS, so it covers this run only;
    // what the process already held when the run began is recorded beside it.
    writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
    this.startRssMiB = toMiB(Number(/^VmRSS:\s+(\d+)/m.exec(this.status())?.[1] ?? 0));
    this.cpuStart = this.cpuSeconds();
    this.wallStart = Date.now();
  }

  stop(): { startRssMiB: number; peakRssMiB: number; cpuPercent: number } {
    const peakKb = Number(/^VmHWM:\s+(\d+)/m.exec(this.status())?.[1] ?? 0);
    const wall = (Date.now() - this.wallStart) / 1000;
    return {
      startRssMiB: this.startRssMiB,
      peakRssMiB: toMiB(peakKb),
      cpuPercent: Math.round(((this.cpuSeconds() - this.cpuStart) / wall) * 1000) / 10,
    };
  }

  private status(): string {
    return readFileSync(`/proc/${this.pid}/status`, 'utf8');
  }
}
