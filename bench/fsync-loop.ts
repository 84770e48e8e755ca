/**
 * The floor of a durable small write on this disk (a separate process): `count` files of
 * `size` bytes, `concurrency` at a time, each written to a temporary name, fsynced, closed
 * and renamed into place, and nothing else. The embedded tier's PUT does this and more, so
 * its rate is compared with this one, measured in the same run.
 *
 * With `durable`, the loop also does what makes the new name survive a crash, as the
 * embedded tier must before it answers: the files are spread over 256 directories as the
 * tier spreads blobs (`<index mod 256>/`), and the directory is fsynced after the rename.
 * Without it the rename is durable only once the filesystem commits on its own.
 *
 * usage: node bench/fsync-loop.ts <directory> <size> <count> <concurrency> [durable]
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { summarise } from './load-result.ts';

const [dir, sizeArg, countArg, concurrencyArg, mode] = process.argv.slice(2);
if (dir === undefined)
  throw new Error('usage: node bench/fsync-loop.ts <dir> <size> <count> <concurrency> [durable]');
const size = Number(sizeArg);
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const durable = mode === 'durable';
const body = randomFillSync(Buffer.allocUnsafe(size));
const directories = durable
  ? Array.from({ length: 256 }, (_, index) => join(dir, index.toString(16).padStart(2, '0')))
  : [dir];
for (const directory of directories) await mkdir(directory, { recursive: true });

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  await handle.sync();
  await handle.close();
}

const latencies: number[] = [];
let next = 0;
const started = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const index = next++;
      const begun = process.hrtime.bigint();
      const directory = directories[index % directories.length]!;
      const temporary = join(dir, `${index}.tmp`);
      const file = await open(temporary, 'w');
      await file.write(body);
      await file.sync();
      await file.close();
      await rename(temporary, join(directory, String(index)));
      if (durable) await syncDirectory(directory);
      latencies.push(Number(process.hrtime.bigint() - begun) / 1e6);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await rm(dir, { recursive: true, force: true });
console.log(JSON.stringify(summarise({ size, seconds, latenciesMs: latencies, errors: 0 })));
