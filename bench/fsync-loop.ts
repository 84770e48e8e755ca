/**
 * The floor of a durable small write on this disk (a separate process): `count` files of
 * `size` bytes, `concurrency` at a time, each written to a temporary name, fsynced, closed
 * and renamed into place, and nothing else. The embedded tier's PUT does this and more, so
 * its rate is compared with this one, measured in the same run.
 *
 * usage: node bench/fsync-loop.ts <directory> <size> <count> <concurrency>
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { summarise } from './load-result.ts';

const [dir, sizeArg, countArg, concurrencyArg] = process.argv.slice(2);
if (dir === undefined)
  throw new Error('usage: node bench/fsync-loop.ts <dir> <size> <count> <concurrency>');
const size = Number(sizeArg);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const body = randomFillSync(Buffer.allocUnsafe(size));
await mkdir(dir, { recursive: true });

const latencies: number[] = [];
let next = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const index = next++;
      const begun = process.hrtime.bigint();
      const temporary = join(dir, `${index}.tmp`);
      const file = await open(temporary, 'w');
      await file.write(body);
      await file.sync();
      await file.close();
      await rename(temporary, join(dir, String(index)));
      latencies.push(Number(process.hrtime.bigint() - begun) / 1e6);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await rm(dir, { recursive: true, force: true });
console.log(JSON.stringify(summarise({ size, seconds, latenciesMs: latencies, errors: 0 })));
