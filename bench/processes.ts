/** CPU time and memory of the measured processes, from Linux /proc. */
import { readFileSync, writeFileSync } from 'node:fs';

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

  stop(): { startRssMiB: number; peakRssMiB: number; cpuPercent: number; cpuSeconds: number } {
    const peakKb = Number(/^VmHWM:\s+(\d+)/m.exec(this.status())?.[1] ?? 0);
    const wall = (Date.now() - this.wallStart) / 1000;
    const cpuSeconds = this.cpuSeconds() - this.cpuStart;
    return {
      startRssMiB: this.startRssMiB,
      peakRssMiB: toMiB(peakKb),
      cpuPercent: Math.round((cpuSeconds / wall) * 1000) / 10,
      cpuSeconds,
    };
  }

  private status(): string {
    return readFileSync(`/proc/${this.pid}/status`, 'utf8');
  }
}
