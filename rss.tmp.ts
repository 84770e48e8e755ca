import { startProductionStack } from './test/harness/production.ts';
import { waitForDrain } from './test/harness/production-helpers.ts';
import { wrkGet } from './bench/load.ts';
import { ProcessSampler } from './bench/processes.ts';
import { randomFillSync, createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
const size = 268435456;
const variants = process.argv.slice(2);
const stack = await startProductionStack({ maxMemory: '3gb' });
const writer = await stack.spawn({ BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint }, { compiled: true });
const blob = randomFillSync(Buffer.allocUnsafe(size));
const key = createHash('md5').update(blob).digest('hex');
console.log('put', (await fetch(`${writer.url}/v1/blobs/${key}`, { method: 'PUT', body: blob })).status);
await waitForDrain(writer.url, 600000);
for (const variant of variants) for (const round of [1, 2]) {
  const child = spawn(process.execPath, [...variant.split(' ').filter(Boolean), 'dist/dataplane/src/main.js'], { env: { PATH: process.env.PATH!, PORT: '0', ...stack.env({ BLOBCACHE_S3_ENDPOINT: stack.s3.endpoint }) }, stdio: ['ignore', 'pipe', 'ignore'] });
  const url = await new Promise<string>((r) => child.stdout!.on('data', (d) => { const m = /"url":"([^"]+)"/.exec(String(d)); if (m) r(m[1]!); }));
  const idle = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  const s = new ProcessSampler(child.pid!); s.start();
  const w = await wrkGet(`${url}/v1/blobs/${key}`, { connections: 4, seconds: 8 });
  console.log(JSON.stringify({ variant, round, idle: idle.toFixed(0), mbs: w.megabytesPerSecond.toFixed(0), ...s.stop() }));
  child.kill('SIGKILL');
}
await stack.stop();
