/**
 * The floor of a durable small upload over HTTP on this machine (a separate process): a
 * bare node:http server that stores each `PUT /v1/blobs/<key>` body as the embedded tier
 * must at least, and nothing else: the body written to a temporary file, fsynced, renamed
 * to `<dir>/<key[0:2]>/<key>`, that directory fsynced, then `201`. No digest check, no
 * meta file, no cache, no logging, no framework. Driven by put-load.ts like the data plane,
 * it shows what the HTTP round trip plus a durable write cost here, in the same run.
 *
 * usage: node bench/put-floor.ts <directory>   (prints {"url": ...} once listening)
 */
import { mkdirSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { serveFloorPuts } from './floor-server.ts';

const [dir] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: node bench/put-floor.ts <dir>');
const tmp = join(dir, 'tmp');
mkdirSync(tmp, { recursive: true });
for (let prefix = 0; prefix < 256; prefix++)
  mkdirSync(join(dir, prefix.toString(16).padStart(2, '0')), { recursive: true });
let sequence = 0;

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  await handle.sync();
  await handle.close();
}

serveFloorPuts(async (key, body) => {
  const temporary = join(tmp, String(sequence++));
  const file = await open(temporary, 'w');
  for await (const chunk of body) await file.write(chunk as Buffer);
  await file.sync();
  await file.close();
  const directory = join(dir, key.slice(0, 2));
  await rename(temporary, join(directory, key));
  await syncDirectory(directory);
});
