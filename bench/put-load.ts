/**
 * PUT load generator (a separate process): uploads `count` distinct blobs of `size` bytes
 * over `connections` keep-alive connections and prints a LoadResult as JSON. The blobs
 * share a random prefix and differ in their last 8 bytes; each key comes from a copy of
 * the prefix's MD5 state, so generating a blob costs nothing while the load runs.
 *
 * usage: node bench/put-load.ts <base url> <size> <count> <connections> <seed>
 */
import { createHash, randomFillSync } from 'node:crypto';
import { Agent, request } from 'node:http';
import { summarise } from './load-result.ts';

const [base, sizeArg, countArg, connectionsArg, seedArg] = process.argv.slice(2);
const size = Number(sizeArg);
const count = Number(countArg);
const connections = Number(connectionsArg);
const seed = Number(seedArg ?? 1);
const prefix = randomFillSync(Buffer.allocUnsafe(Math.max(0, size - 8)));
const prefixHash = createHash('md5').update(prefix);
const agent = new Agent({ keepAlive: true, maxSockets: connections });

function suffix(index: number): Buffer {
  const out = Buffer.alloc(Math.min(8, size));
  const value = Buffer.alloc(8);
  value.writeUInt32LE(seed, 0);
  value.writeUInt32LE(index, 4);
  value.copy(out, 0, 8 - out.length);
  return out;
}

function putOne(index: number): Promise<{ status: number; ms: number }> {
  const tail = suffix(index);
  const key = prefixHash.copy().update(tail).digest('hex');
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/v1/blobs/${key}`,
      { method: 'PUT', agent, headers: { 'Content-Length': String(size) } },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
          }),
        );
      },
    );
    req.on('error', reject);
    req.write(prefix);
    req.end(tail);
  });
}

const latencies: number[] = [];
let errors = 0;
let next = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (next < count) {
      const index = next++;
      const { status, ms } = await putOne(index).catch(() => ({ status: 0, ms: 0 }));
      if (status !== 201) errors += 1;
      latencies.push(ms);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
agent.destroy();
console.log(JSON.stringify(summarise({ size, seconds, latenciesMs: latencies, errors })));
