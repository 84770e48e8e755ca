/**
 * What each image is, declared once: the image script (`npm run image`) builds from this,
 * and test/packaging checks that the Dockerfile's targets say the same (user, working
 * directory, environment, command, exposed ports, entry points).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
// Where the Redis image keeps the node start script: the operator's Redis pods run it there.
import { REDIS_NODE_START_SCRIPT } from '../../operator/src/resources/redis.ts';

export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
};

/** The project's version: the default tag of both images and the chart's appVersion. */
export const VERSION = version;

export interface ImageSpec {
  /** Repository part of the tag; `blobcache/blobcache` means docker.io/blobcache/blobcache. */
  repository: string;
  /** The Dockerfile target that builds the same image. */
  dockerTarget: string;
  /** Numeric `uid:gid`, so that `runAsNonRoot` can be verified without an /etc/passwd lookup. */
  user: string;
  workingDir: string;
  env: Record<string, string>;
  cmd: string[];
  exposedPorts: number[];
  /**
   * Named commands of the image, recorded as `io.blobcache.entrypoint.<name>` labels (a
   * JSON array each). The image has no ENTRYPOINT: a Pod picks one with `command`.
   */
  entryPoints: Record<string, string[]>;
  /** Files of the repository copied into the image (path in the repository → in the image). */
  files: Record<string, string>;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DATAPLANE = ['node', '--max-semi-space-size=2', 'dist/dataplane/src/main.js'];

/** Node 24, the compiled data plane and operator, production node_modules. */
export const BLOBCACHE_IMAGE: ImageSpec = {
  repository: 'blobcache/blobcache',
  dockerTarget: 'blobcache',
  user: '1000:1000',
  workingDir: '/app',
  env: {
    PATH,
    NODE_ENV: 'production',
    BLOBCACHE_HOST: '0.0.0.0',
    BLOBCACHE_DATA_DIR: '/var/lib/blobcache',
  },
  cmd: DATAPLANE,
  exposedPorts: [8080],
  entryPoints: {
    // A small young generation frees streamed buffers sooner (docs/decisions/0004).
    dataplane: DATAPLANE,
    operator: ['node', 'dist/operator/src/main.js'],
    // `npm run backfill` compiled; the operator's backfill Jobs run it (a unit test keeps
    // the operator's command and this one equal).
    backfill: ['node', '--max-semi-space-size=2', 'dist/dataplane/src/commands/backfill.js'],
  },
  files: {},
};

export { REDIS_NODE_START_SCRIPT };

/** Debian's redis-server and redis-cli, a POSIX shell and coreutils for start scripts. */
export const REDIS_IMAGE: ImageSpec = {
  repository: 'blobcache/redis',
  dockerTarget: 'redis',
  user: '999:999',
  workingDir: '/data',
  env: { PATH },
  cmd: ['redis-server'],
  exposedPorts: [6379, 16379],
  entryPoints: {
    redis: ['redis-server'],
    // Starts a cluster node that never comes back as an empty master of its old slots.
    node: ['sh', REDIS_NODE_START_SCRIPT],
  },
  files: { 'scripts/redis-node/start.sh': REDIS_NODE_START_SCRIPT },
};

export const IMAGES = { blobcache: BLOBCACHE_IMAGE, redis: REDIS_IMAGE } as const;
export type ImageName = keyof typeof IMAGES;

export function imageTag(spec: ImageSpec, tag = VERSION): string {
  return `${spec.repository}:${tag}`;
}
