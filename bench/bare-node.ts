/**
 * The floor for a small hit in this runtime: a bare `node:http` server (same node flags as
 * the data plane) answering one blob from memory with the headers a data-plane hit carries,
 * and nothing else — no routing, guards, metrics or cache. Measured beside the data plane,
 * it shows how much of a gap to nginx is Node's own (`node bench/bare-node.ts <file>`
 * serves that file at any path and prints its URL).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { mustUndo } from './cleanup.ts';

export interface BareNode {
  url: string;
  pid: number;
}

/** Starts the bare server on `file` in a process of its own, with `npm start`'s node flags. */
export async function startBareNode(file: string): Promise<BareNode> {
  const root = join(import.meta.dirname, '..');
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const flags = manifest.scripts.start.split(/\s+/).filter((arg) => arg.startsWith('--'));
  const child = spawn(
    process.execPath,
    [...flags, join(import.meta.dirname, 'bare-node.ts'), file],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  mustUndo(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`bare-node.ts exited with ${code}`)));
  });
  return { url, pid: child.pid! };
}

function serve(file: string): void {
  const blob = readFileSync(file);
  const etag = `"${file.split('/').pop()}"`;
  const server = createServer((_req, res) => {
    res.writeHead(200, [
      'X-Request-Id',
      randomUUID(),
      'ETag',
      etag,
      'Accept-Ranges',
      'bytes',
      'Cache-Control',
      'public, max-age=31536000, immutable',
      'Content-Type',
      'application/octet-stream',
      'Content-Length',
      String(blob.length),
      'X-Cache',
      'hit',
    ]);
    res.end(blob);
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
  });
}

if (process.argv[1] === import.meta.filename) serve(process.argv[2]!);
