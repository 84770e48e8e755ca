/**
 * `npm run image` builds the project's two container images without a Docker engine, as
 * docker-archive tars that `docker load` and `ctr -n k8s.io images import` accept:
 *
 *   blobcache  Node 24 from the npm registry with the libraries it loads, the compiled
 *              data plane and operator, production node_modules (the Dockerfile's
 *              `blobcache` target holds the same)
 *   redis      Debian's redis-server and redis-cli, a POSIX shell and coreutils (the
 *              Dockerfile's `redis` target)
 *
 *   npm run image [-- --out DIR] [--tag TAG] [--only blobcache|redis]
 *                 [--blobcache-image REPO:TAG] [--redis-image REPO:TAG]
 *
 * Writes DIR/blobcache.tar and DIR/redis.tar (default DIR: build/images; default tags
 * blobcache/blobcache:<version> and blobcache/redis:<version>).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { imageConfig, writeDockerArchive, writeLayer } from './archive.ts';
import { blobcacheRootFs, redisRootFs } from './contents.ts';
import { IMAGES, REPO_ROOT, imageTag, type ImageName } from './spec.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: join(REPO_ROOT, 'build/images') },
    tag: { type: 'string' },
    only: { type: 'string', multiple: true },
    'blobcache-image': { type: 'string' },
    'redis-image': { type: 'string' },
  },
});

/** One time for every entry: SOURCE_DATE_EPOCH, else the last commit's, so rebuilds match. */
function buildTime(): Date {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && /^\d+$/.test(fromEnv)) return new Date(Number(fromEnv) * 1000);
  const git = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const seconds = Number(git.stdout.trim());
  return new Date(git.status === 0 && seconds > 0 ? seconds * 1000 : 0);
}

const names = (values.only ?? ['blobcache', 'redis']).map((name) => {
  if (!(name in IMAGES)) throw new Error(`--only takes blobcache or redis, not '${name}'`);
  return name as ImageName;
});
const out = resolve(values.out);
mkdirSync(out, { recursive: true });
const mtime = buildTime();
const stage = mkdtempSync(join(tmpdir(), 'blobcache-image-'));
try {
  for (const name of names) {
    const spec = IMAGES[name];
    const tag = values[`${name}-image`] ?? imageTag(spec, values.tag);
    const started = Date.now();
    const { rootfs, labels } =
      name === 'blobcache' ? blobcacheRootFs(join(stage, name)) : redisRootFs();
    const layerPath = join(out, `${name}.layer.tar`);
    const layer = await writeLayer(rootfs.list(), layerPath, mtime);
    const path = join(out, `${name}.tar`);
    await writeDockerArchive({
      path,
      layerPath,
      layerDigest: layer.digest,
      config: imageConfig(spec, layer.digest, mtime, labels),
      tags: [tag],
      mtime,
    });
    const megabytes = (layer.size / 1e6).toFixed(0);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`Wrote ${path}: ${tag}, ${megabytes} MB, layer ${layer.digest} (${seconds} s)`);
  }
} finally {
  rmSync(stage, { recursive: true, force: true });
}
