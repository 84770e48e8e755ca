/**
 * Where a CPU profile (node --cpu-prof) spent its time: self time by function, largest
 * first. Used by the report when BENCH_PROFILE=1; also a command:
 * node bench/profile-top.ts <file.cpuprofile> [count]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  /** `name (file:line)`, or what V8 calls time outside JavaScript: (program), (garbage collector). */
  where: string;
  selfMs: number;
  share: number;
}

const ROOT = new URL('../', import.meta.url).pathname;

export function profileTop(file: string, count = 15): HotFunction[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const names = new Map<number, string>();
  for (const { id, callFrame } of profile.nodes) {
    const name = callFrame.functionName || '(anonymous)';
    const url = callFrame.url.replace(/^file:\/\//, '');
    names.set(
      id,
      url === ''
        ? name
        : `${name} (${url.startsWith(ROOT) ? relative(ROOT, url) : url}:${callFrame.lineNumber + 1})`,
    );
  }
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const micros = profile.timeDeltas[index] ?? 0;
    const where = names.get(id) ?? '(unknown)';
    self.set(where, (self.get(where) ?? 0) + micros);
    total += micros;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([where, micros]) => ({ where, selfMs: micros / 1000, share: micros / (total || 1) }));
}

if (import.meta.main) {
  const [file, count] = process.argv.slice(2);
  if (file === undefined)
    throw new Error('usage: node bench/profile-top.ts <file.cpuprofile> [count]');
  for (const entry of profileTop(file, Number(count ?? 15)))
    console.log(
      `${(entry.share * 100).toFixed(1).padStart(5)} %  ${entry.selfMs.toFixed(0).padStart(7)} ms  ${entry.where}`,
    );
}
