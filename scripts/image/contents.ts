/**
 * What goes into each image. The blobcache image mirrors the Dockerfile's `blobcache`
 * target (node at /usr/local/bin/node, the app under /app, the data directory owned by the
 * non-root user); the redis image mirrors its `redis` target, from Debian's packages.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { RootFs, sharedLibraries } from './rootfs.ts';
import { BLOBCACHE_IMAGE, REDIS_IMAGE, REPO_ROOT, VERSION, type ImageSpec } from './spec.ts';

export interface ImageContents {
  rootfs: RootFs;
  labels: Record<string, string>;
}

function run(command: string, args: string[], cwd = REPO_ROOT): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 2] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed`);
  return result.stdout;
}

function ids(spec: ImageSpec): { uid: number; gid: number } {
  const [uid, gid] = spec.user.split(':').map(Number) as [number, number];
  return { uid, gid };
}

/** /etc basics, /tmp, and the image's one non-root user. */
function baseSystem(spec: ImageSpec, user: { name: string; home: string }): RootFs {
  const { uid, gid } = ids(spec);
  const rootfs = new RootFs();
  rootfs
    .content(
      '/etc/passwd',
      `root:x:0:0:root:/root:/usr/sbin/nologin\n${user.name}:x:${uid}:${gid}:${user.name}:${user.home}:/usr/sbin/nologin\n`,
    )
    .content('/etc/group', `root:x:0:\n${user.name}:x:${gid}:\n`)
    // glibc's own default would ask DNS before /etc/hosts.
    .content('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n')
    .directory('/root', { mode: 0o700 })
    .directory('/tmp', { mode: 0o1777 })
    .directory(user.home, { uid, gid });
  return rootfs;
}

/** The repository files the spec names, each where the spec puts it. */
function copyFiles(rootfs: RootFs, spec: ImageSpec): void {
  for (const [from, to] of Object.entries(spec.files)) rootfs.copyFile(join(REPO_ROOT, from), to);
}

const base = (spec: ImageSpec) => ({
  'org.opencontainers.image.title': spec.repository,
  'org.opencontainers.image.version': VERSION,
  'org.opencontainers.image.licenses': 'Apache-2.0',
});

/**
 * Compiles the TypeScript into `stage`, installs the production dependencies there from
 * the lockfile (no install scripts), and lays out the image.
 */
export function blobcacheRootFs(stage: string): ImageContents {
  const spec = BLOBCACHE_IMAGE;
  const app = join(stage, 'app');
  mkdirSync(app, { recursive: true });
  run(join(REPO_ROOT, 'node_modules/.bin/tsc'), [
    '-p',
    'tsconfig.build.json',
    '--outDir',
    join(app, 'dist'),
  ]);
  for (const file of ['package.json', 'package-lock.json']) {
    copyFileSync(join(REPO_ROOT, file), join(app, file));
  }
  const npmFlags = [
    '--omit=dev',
    '--ignore-scripts',
    '--no-audit',
    '--no-fund',
    '--prefer-offline',
  ];
  run('npm', ['ci', ...npmFlags], app);

  // Node 24 as the npm registry ships it (the `node` devDependency), not the machine's.
  const node = realpathSync(join(REPO_ROOT, 'node_modules/node/bin/node'));
  const nodeVersion = run(node, ['--version']).trim();
  if (!nodeVersion.startsWith('v24.')) throw new Error(`${node} is ${nodeVersion}, not Node 24`);

  const { uid, gid } = ids(spec);
  const rootfs = baseSystem(spec, { name: 'node', home: '/home/node' });
  rootfs.copyFile(node, '/usr/local/bin/node');
  for (const library of sharedLibraries(node)) rootfs.hostPath(library);
  rootfs
    .copyTree(join(app, 'dist'), '/app/dist')
    .copyTree(join(app, 'node_modules'), '/app/node_modules')
    .copyFile(join(REPO_ROOT, 'package.json'), '/app/package.json')
    .directory(spec.env.BLOBCACHE_DATA_DIR!, { uid, gid });
  copyFiles(rootfs, spec);
  return { rootfs, labels: { ...base(spec), 'io.blobcache.node.version': nodeVersion } };
}

/** The installed version of a Debian package; fails when it is not installed. */
function debianPackage(name: string): { version: string; files: string[] } {
  const query = spawnSync('dpkg-query', ['-W', '-f=${Version}', name], { encoding: 'utf8' });
  if (query.status !== 0 || query.stdout === '') {
    throw new Error(`The Debian package ${name} is not installed (apt-get install ${name})`);
  }
  const files = run('dpkg-query', ['-L', name]).split('\n').filter(Boolean);
  return { version: query.stdout, files };
}

/** Programs of the package (under a bin directory), as dpkg lists them. */
const programs = (files: string[]) => files.filter((file) => /^\/(usr\/)?s?bin\/[^/]+$/.test(file));

/**
 * Debian's redis-server and redis-cli; dash as /bin/sh and coreutils, which the node start
 * script (scripts/redis-node/start.sh, copied in) needs.
 */
export function redisRootFs(): ImageContents {
  const spec = REDIS_IMAGE;
  const { uid, gid } = ids(spec);
  const packages = Object.fromEntries(
    ['redis-server', 'redis-tools', 'dash', 'coreutils'].map((name) => [name, debianPackage(name)]),
  );
  const rootfs = baseSystem(spec, { name: 'redis', home: spec.workingDir });
  rootfs.hostBinary('/usr/bin/redis-server').hostBinary('/usr/bin/redis-cli');
  for (const program of programs(packages.dash!.files)) rootfs.hostBinary(program);
  if (!realpathSync('/bin/sh').endsWith('/dash')) {
    throw new Error(`/bin/sh on this machine is ${realpathSync('/bin/sh')}, not Debian's dash`);
  }
  rootfs.hostPath('/bin/sh');
  for (const program of programs(packages.coreutils!.files)) rootfs.hostBinary(program);
  rootfs.directory(spec.workingDir, { uid, gid });
  copyFiles(rootfs, spec);
  const versions = Object.entries(packages).map(([name, { version }]): [string, string] => [
    `io.blobcache.debian.${name}`,
    version,
  ]);
  return { rootfs, labels: { ...base(spec), ...Object.fromEntries(versions) } };
}
