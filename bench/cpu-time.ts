/**
 * CPU time spent by the processes a measurement involves, from /proc (Linux): a figure the
 * other load on a shared machine does not change, unlike a throughput. Per process, user +
 * system time; for this process's children, the time of those already waited for.
 */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

/** utime + stime (and, with `children`, cutime + cstime) of `pid`, in seconds. */
function cpuSeconds(pid: number | 'self', children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may hold spaces: state is field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const at = (field: number) => Number(fields[field - 3]);
  const own = at(14) + at(15);
  return (children ? at(16) + at(17) : own) / TICKS_PER_SECOND;
}

/** CPU seconds per group of processes between `start` and the returned function's call. */
export function cpuMeter(groups: Record<string, readonly number[]>): {
  /** Seconds per group since the meter started; `children` is this process's finished children. */
  read(): Record<string, number> & { children: number };
} {
  const sample = () => ({
    children: cpuSeconds('self', true),
    ...Object.fromEntries(
      Object.entries(groups).map(([name, pids]) => [
        name,
        pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0),
      ]),
    ),
  });
  const started = sample();
  return {
    read() {
      const now = sample();
      return Object.fromEntries(
        Object.entries(now).map(([name, seconds]) => [
          name,
          seconds - started[name as keyof typeof started],
        ]),
      ) as Record<string, number> & { children: number };
    },
  };
}
