/**
 * The images `npm run image` builds, built once per test run (as the README runs it, into
 * build/images/) and unpacked into a temporary directory removed when the run ends, and
 * a way to run a command inside one without a container runtime.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { extract, type Header } from 'tar-stream';
import { IMAGES, type ImageName } from '../../scripts/image/spec.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { run } from './tools.ts';

export interface ImageArchive {
  tags: string[];
  config: {
    config: {
      User: string;
      WorkingDir: string;
      Env: string[];
      Cmd: string[];
      ExposedPorts: Record<string, object>;
      Labels: Record<string, string>;
    };
    rootfs: { diff_ids: string[] };
  };
  configFileMatchesDigest: boolean;
  layerDigest: string;
  entries: Map<string, Header>;
  /** The image's file system, unpacked with GNU tar. */
  rootfs: string;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Lists a layer tar with its headers (streamed, never read whole). */
async function layerEntries(path: string): Promise<Map<string, Header>> {
  const entries = new Map<string, Header>();
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    entries.set(`/${header.name.replace(/\/$/, '')}`, header);
    stream.on('end', () => next());
    stream.resume();
  });
  await pipeline(createReadStream(path), reader);
  return entries;
}

export async function openArchive(path: string, into: string): Promise<ImageArchive> {
  await mkdir(join(into, 'rootfs'), { recursive: true });
  const untar = (args: string[]) => {
    const result = spawnSync('tar', args, { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`tar ${args.join(' ')}: ${result.stderr}`);
  };
  untar(['-xf', path, '-C', into]);
  const [manifest] = JSON.parse(readFileSync(join(into, 'manifest.json'), 'utf8')) as {
    Config: string;
    RepoTags: string[];
    Layers: string[];
  }[];
  const configText = readFileSync(join(into, manifest!.Config), 'utf8');
  const layer = join(into, manifest!.Layers[0]!);
  const layerHash = createHash('sha256');
  await pipeline(createReadStream(layer), layerHash);
  untar(['-xpf', layer, '-C', join(into, 'rootfs'), '--numeric-owner']);
  return {
    tags: manifest!.RepoTags,
    config: JSON.parse(configText) as ImageArchive['config'],
    configFileMatchesDigest: manifest!.Config === `${sha256(configText)}.json`,
    layerDigest: `sha256:${layerHash.digest('hex')}`,
    entries: await layerEntries(layer),
    rootfs: join(into, 'rootfs'),
  };
}

/** Runs a command inside an image's file system as the image's user and working directory. */
export function runInImage(
  image: ImageArchive,
  command: string[],
  env: Record<string, string> = {},
): ChildProcess {
  const { User, WorkingDir, Env } = image.config.config;
  const [uid, gid] = User.split(':');
  return spawn(
    'unshare',
    [
      `--root=${image.rootfs}`,
      `--wd=${WorkingDir}`,
      `--setuid=${uid}`,
      `--setgid=${gid}`,
      ...command,
    ],
    {
      env: {
        ...Object.fromEntries(
          Env.map((pair): [string, string] => [
            pair.split('=')[0]!,
            pair.slice(pair.indexOf('=') + 1),
          ]),
        ),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}

export async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
}

let built: Promise<Record<ImageName, ImageArchive>> | undefined;

/** Runs `npm run image` once and unpacks both images (removed when the process exits). */
export function builtImages(): Promise<Record<ImageName, ImageArchive>> {
  built ??= (async () => {
    const work = mkdtempSync(join(tmpdir(), 'blobcache-images-'));
    process.once('exit', () => rmSync(work, { recursive: true, force: true }));
    const result = run('npm', ['run', 'image']);
    if (result.status !== 0) throw new Error(`npm run image failed:\n${result.stderr}`);
    const images = {} as Record<ImageName, ImageArchive>;
    for (const name of Object.keys(IMAGES) as ImageName[]) {
      images[name] = await openArchive(
        join(REPO_ROOT, 'build/images', `${name}.tar`),
        join(work, name),
      );
    }
    return images;
  })();
  return built;
}
