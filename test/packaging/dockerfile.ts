/**
 * Reads what each stage of the Dockerfile declares (user, working directory, environment,
 * ports, command, labels, copies): enough to compare its targets with the image script's.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

export interface DockerStage {
  name: string;
  from: string;
  user?: string;
  workingDir?: string;
  env: Record<string, string>;
  exposedPorts: number[];
  cmd?: string[];
  labels: Record<string, string>;
  /** Destinations of COPY instructions, absolute (resolved against WORKDIR). */
  copies: string[];
}

const unquote = (value: string): string =>
  /^'.*'$/.test(value)
    ? value.slice(1, -1)
    : /^".*"$/.test(value)
      ? (JSON.parse(value) as string)
      : value;

/** `key=value` pairs, values optionally single- or double-quoted. */
function pairs(text: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const match of text.matchAll(/([\w.-]+)=('[^']*'|"(?:[^"\\]|\\.)*"|\S+)/g)) {
    found[match[1]!] = unquote(match[2]!);
  }
  return found;
}

export function readDockerfile(path: string): DockerStage[] {
  // Continuation lines joined, comments and blank lines dropped.
  const instructions = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const stages: DockerStage[] = [];
  for (const line of instructions) {
    const [, keyword = '', rest = ''] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    const stage = stages.at(-1);
    if (keyword === 'FROM') {
      const [, from = '', name = ''] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(rest) ?? [];
      stages.push({ name, from, env: {}, exposedPorts: [], labels: {}, copies: [] });
      continue;
    }
    if (stage === undefined) continue;
    switch (keyword) {
      case 'USER':
        stage.user = rest;
        break;
      case 'WORKDIR':
        stage.workingDir = rest;
        break;
      case 'ENV':
        Object.assign(stage.env, pairs(rest));
        break;
      case 'LABEL':
        Object.assign(stage.labels, pairs(rest));
        break;
      case 'EXPOSE':
        stage.exposedPorts.push(...rest.split(/\s+/).map((port) => Number(port.split('/')[0])));
        break;
      case 'CMD':
        stage.cmd = JSON.parse(rest) as string[];
        break;
      case 'COPY': {
        const words = rest.split(/\s+/).filter((word) => !word.startsWith('--'));
        let destination = words.at(-1)!;
        // Into a directory: the source keeps its name.
        if (destination === '.' || destination.endsWith('/')) {
          destination = `${destination.replace(/\/?$/, '/')}${basename(words[0]!)}`;
        }
        const base = stage.workingDir ?? '/';
        stage.copies.push(
          destination.startsWith('/') ? destination : `${base}/${destination.replace(/^\.\//, '')}`,
        );
        break;
      }
    }
  }
  return stages;
}
