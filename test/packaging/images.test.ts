/**
 * `npm run image` as the README runs it: both docker-archives well formed (config digest,
 * diff_id, tags), in step with the Dockerfile's targets, holding what they should and
 * nothing owned by a non-root user but their data directories; then each image's file
 * system is run as its user (unshare --root, the way a runtime enters it, without one):
 * the data plane serves a blob, the operator entry point starts, Redis starts the way the
 * operator starts it. (Importing into containerd is checked by the end-to-end tier.)
 */
import { expect } from 'chai';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Header } from 'tar-stream';
import {
  IMAGES,
  REDIS_IMAGE,
  VERSION,
  type ImageName,
  type ImageSpec,
} from '../../scripts/image/spec.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { eventually } from '../harness/eventually.ts';
import { freePorts } from '../harness/services.ts';
import { readDockerfile } from './dockerfile.ts';
import { builtImages, openArchive, runInImage, stop, type ImageArchive } from './images.ts';
import { hadolintBinary, run } from './tools.ts';

describe('npm run image', function () {
  this.timeout(120_000);
  let work: string;
  let images: Partial<Record<ImageName, ImageArchive>> = {};
  const image = (name: ImageName) => {
    const found = images[name];
    if (found === undefined) throw new Error(`The ${name} image was not built`);
    return found;
  };
  const isRoot = process.getuid?.() === 0;

  before(async function () {
    this.timeout(600_000);
    work = await mkdtemp(join(tmpdir(), 'blobcache-images-'));
    // As the README says, from the checkout: writes build/images/*.tar.
    images = await builtImages();
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('writes docker-archives: config named by its digest, diff_id the layer digest, tags', () => {
    for (const [name, spec] of Object.entries(IMAGES)) {
      const archive = image(name as ImageName);
      expect(archive.tags).to.deep.equal([`${spec.repository}:${VERSION}`]);
      expect(archive.configFileMatchesDigest, name).to.be.true;
      expect(archive.config.rootfs.diff_ids).to.deep.equal([archive.layerDigest]);
    }
  });

  const dockerStages = readDockerfile(join(REPO_ROOT, 'Dockerfile'));
  for (const spec of Object.values<ImageSpec>(IMAGES)) {
    it(`keeps the Dockerfile's ${spec.dockerTarget} target and the ${spec.repository} image in step`, () => {
      const stage = dockerStages.find((candidate) => candidate.name === spec.dockerTarget);
      expect(stage, `Dockerfile target ${spec.dockerTarget}`).to.not.equal(undefined);
      const config = image(spec === REDIS_IMAGE ? 'redis' : 'blobcache').config.config;
      expect(stage!.user).to.equal(spec.user).and.to.equal(config.User);
      expect(stage!.workingDir).to.equal(spec.workingDir).and.to.equal(config.WorkingDir);
      expect(stage!.cmd).to.deep.equal(spec.cmd).and.to.deep.equal(config.Cmd);
      expect(stage!.exposedPorts).to.deep.equal(spec.exposedPorts);
      expect(Object.keys(config.ExposedPorts)).to.deep.equal(
        spec.exposedPorts.map((port) => `${port}/tcp`),
      );
      // The Dockerfile's ENV on top of its base image's PATH.
      expect({ PATH: spec.env.PATH, ...stage!.env }).to.deep.equal(spec.env);
      expect(config.Env).to.deep.equal(Object.entries(spec.env).map(([k, v]) => `${k}=${v}`));
      const entryPoints = (labels: Record<string, string>) =>
        Object.fromEntries(
          Object.entries(labels)
            .filter(([label]) => label.startsWith('io.blobcache.entrypoint.'))
            .map(([label, value]): [string, string[]] => [
              label.split('.').pop()!,
              JSON.parse(value) as string[],
            ]),
        );
      expect(entryPoints(stage!.labels)).to.deep.equal(spec.entryPoints);
      expect(entryPoints(config.Labels)).to.deep.equal(spec.entryPoints);
      // What the Dockerfile copies into the image is where the script puts it.
      const archive = image(spec === REDIS_IMAGE ? 'redis' : 'blobcache');
      for (const path of stage!.copies) expect(archive.entries.has(path), path).to.be.true;
    });
  }

  it('blobcache: Node 24 from npm and its loader, the app, no dev dependencies, owned by root', () => {
    const { entries } = image('blobcache');
    const node = entries.get('/usr/local/bin/node');
    const npmNode = realpathSync(join(REPO_ROOT, 'node_modules/node/bin/node'));
    expect(node?.size).to.equal(statSync(npmNode).size);
    expect(node?.mode).to.equal(0o755);
    const loader = resolveInImage(entries, '/lib64/ld-linux-x86-64.so.2');
    expect(entries.get(loader)?.type, `the dynamic loader (${loader})`).to.equal('file');
    expect(image('blobcache').config.config.Labels['io.blobcache.node.version']).to.match(/^v24\./);
    // Each entry point's script is in the image; backfill only once its command exists.
    for (const [name, command] of Object.entries(IMAGES.blobcache.entryPoints)) {
      const script = `/app/${command.at(-1)!}`;
      const source = join(
        REPO_ROOT,
        command
          .at(-1)!
          .replace(/^dist\//, '')
          .replace(/\.js$/, '.ts'),
      );
      if (name === 'backfill' && !existsSync(source)) continue;
      expect(entries.has(script), `${name}: ${script}`).to.be.true;
    }
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    for (const dependency of Object.keys(pkg.dependencies)) {
      expect(entries.has(`/app/node_modules/${dependency}/package.json`), dependency).to.be.true;
    }
    for (const tool of ['mocha', 'typescript', 'eslint', 'prettier', 'chai', 'node']) {
      expect(entries.has(`/app/node_modules/${tool}`), `dev dependency ${tool}`).to.be.false;
    }
    expectOwnership(entries, ['/var/lib/blobcache', '/home/node'], 1000);
  });

  it("redis: Debian's redis-server and redis-cli, /bin/sh and coreutils, owned by root", () => {
    const { entries, config } = image('redis');
    for (const path of [
      '/usr/bin/redis-server',
      '/usr/bin/redis-cli',
      '/usr/bin/dash',
      '/usr/bin/ls',
    ]) {
      expect(entries.has(path), path).to.be.true;
    }
    expect(entries.get('/bin/sh') ?? entries.get('/usr/bin/sh'), '/bin/sh').to.not.equal(undefined);
    expect(config.config.Labels['io.blobcache.debian.redis-server']).to.match(/^\d+:7\./);
    expectOwnership(entries, ['/data'], 999);
  });

  it('the data plane runs from the image as its user and serves a blob', async function () {
    if (!isRoot) this.skip();
    const port = await freePorts(1);
    // Loopback only: the image's default host is 0.0.0.0.
    const dataplane = runInImage(image('blobcache'), image('blobcache').config.config.Cmd, {
      PORT: String(port),
      BLOBCACHE_HOST: '127.0.0.1',
      BLOBCACHE_DATA_DIR: '/tmp/blobs',
    });
    try {
      const url = `http://127.0.0.1:${port}/v1/blobs/5d41402abc4b2a76b9719d911017c592`;
      await eventually(
        'the data plane to be ready',
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok,
      );
      expect((await fetch(url, { method: 'PUT', body: 'hello' })).status).to.equal(201);
      const read = await fetch(url);
      expect(read.status).to.equal(200);
      expect(await read.text()).to.equal('hello');
    } finally {
      expect(await stop(dataplane)).to.equal(0);
    }
  });

  it('the operator entry point starts from the image and serves /healthz', async function () {
    if (!isRoot) this.skip();
    const blobcache = image('blobcache');
    const port = await freePorts(1);
    // An API server that is not there: the operator still serves its probes while it
    // keeps trying for the Lease.
    await writeFile(
      join(blobcache.rootfs, 'tmp/kubeconfig'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'none', cluster: { server: 'https://127.0.0.1:1' } }],
        users: [{ name: 'none', user: { token: 'none' } }],
        contexts: [{ name: 'none', context: { cluster: 'none', user: 'none' } }],
        'current-context': 'none',
      }),
    );
    const operator = runInImage(blobcache, IMAGES.blobcache.entryPoints.operator!, {
      KUBECONFIG: '/tmp/kubeconfig',
      OPERATOR_METRICS_PORT: String(port),
      OPERATOR_NAMESPACE: 'blobcache-system',
    });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + String(chunk)).slice(-8000));
    operator.stdout!.on('data', keep);
    operator.stderr!.on('data', keep);
    try {
      await eventually(
        'the operator to serve /healthz',
        async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
      );
    } finally {
      expect(await stop(operator), `the operator's exit code; its output:\n${output}`).to.equal(0);
    }
  });

  describe('Redis runs from its image as uid 999', () => {
    const startRedis = async (command: (port: number) => string[], env = {}) => {
      const redis = image('redis');
      await rm(join(redis.rootfs, 'data/nodes.conf'), { force: true });
      const port = await freePorts(1, true);
      const server = runInImage(redis, command(port), env);
      let output = '';
      server.stderr!.on(
        'data',
        (chunk: Buffer) => (output = (output + String(chunk)).slice(-4000)),
      );
      const ping = () =>
        new Promise<string>((resolve) => {
          const cli = runInImage(redis, ['redis-cli', '-p', String(port), 'ping'], env);
          let answer = '';
          cli.stdout!.on('data', (chunk: Buffer) => (answer += chunk.toString()));
          cli.once('exit', () => resolve(answer.trim()));
        });
      try {
        await eventually(
          'redis-server to answer PING',
          async () => (await ping()) === 'PONG',
        ).catch((error: unknown) => {
          throw new Error(`${String(error)}\n${output}`);
        });
        expect(statSync(join(redis.rootfs, 'data/nodes.conf')).uid).to.equal(999);
      } finally {
        await stop(server);
      }
      return output;
    };

    it('through the node start script, as the operator runs it (with a password)', async function () {
      if (!isRoot) this.skip();
      const output = await startRedis(
        (port) => [
          ...REDIS_IMAGE.entryPoints.node!,
          ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-node-timeout', '5000'],
          ...['--dir', '/data', '--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru'],
        ],
        // redis-cli reads the password from REDISCLI_AUTH, the script from REDIS_PASSWORD.
        { REDIS_PASSWORD: 'test-password', REDISCLI_AUTH: 'test-password' },
      );
      expect(output).to.include('no cluster config: starting as a new node');
    });

    it('with sh -c exec redis-server', async function () {
      if (!isRoot) this.skip();
      await startRedis((port) => [
        'sh',
        '-c',
        `exec redis-server --port ${port} --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file /data/nodes.conf --dir /data --save "" --appendonly no`,
      ]);
    });
  });

  it('takes other names and tags', async () => {
    const out = join(work, 'renamed');
    const buildRedis = async (naming: string[], folder: string) => {
      const built = run('npm', ['run', 'image', '--', '--only', 'redis', '--out', out, ...naming]);
      expect(built.status, built.stderr).to.equal(0);
      return openArchive(join(out, 'redis.tar'), join(work, folder));
    };
    const renamed = await buildRedis(
      ['--redis-image', 'registry.example.test/team/redis:e2e'],
      'a',
    );
    expect(renamed.tags).to.deep.equal(['registry.example.test/team/redis:e2e']);
    const dev = await buildRedis(['--tag', 'dev'], 'b');
    expect(dev.tags).to.deep.equal(['blobcache/redis:dev']);
    // Same inputs, same layer: the build is reproducible.
    expect(dev.layerDigest).to.equal(image('redis').layerDigest);
  });

  it('the Dockerfile passes hadolint', () => {
    const linted = run(hadolintBinary(), ['Dockerfile']);
    expect(linted.status, linted.stdout + linted.stderr).to.equal(0);
  });
});

/** A path with the image's own symlinks followed (absolute targets are inside the image). */
function resolveInImage(entries: Map<string, Header>, path: string, depth = 0): string {
  if (depth > 40) throw new Error(`Too many symlinks at ${path}`);
  const parts = path.split('/').filter(Boolean);
  for (let index = 1; index <= parts.length; index++) {
    const prefix = `/${parts.slice(0, index).join('/')}`;
    const header = entries.get(prefix);
    if (header?.type === 'symlink') {
      const target = header.linkname.startsWith('/')
        ? header.linkname
        : posix.join(posix.dirname(prefix), header.linkname);
      return resolveInImage(entries, posix.join(target, ...parts.slice(index)), depth + 1);
    }
  }
  return path;
}

/** Everything is root's, not setuid or setgid, except `owned` (owned by `id`). */
function expectOwnership(entries: Map<string, Header>, owned: string[], id: number): void {
  for (const [path, header] of entries) {
    const expected = owned.includes(path) ? id : 0;
    expect([path, header.uid, header.gid]).to.deep.equal([path, expected, expected]);
    expect((header.mode ?? 0) & 0o6000, `${path} is setuid or setgid`).to.equal(0);
  }
  expect(entries.get('/tmp')?.mode).to.equal(0o1777);
}
