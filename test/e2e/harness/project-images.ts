/**
 * The project's own images (`npm run image`: blobcache/blobcache and blobcache/redis), built
 * as the README builds them into build/images/ and reused while what goes into them is
 * unchanged: the key is a digest of the sources, the lockfile, the image scripts and the
 * Debian packages the images copy from, kept beside the archives.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGES, imageTag, type ImageName } from '../../../scripts/image/spec.ts';
import { REPO_ROOT } from '../../harness/dataplane.ts';
import { run } from './commands.ts';
import type { ImageArchive } from './images.ts';
import { timed } from './progress.ts';

export interface ProjectImage extends ImageArchive {
  /** `sha256:<digest of the image config>`: the image ID containerd reports once imported. */
  id: string;
}

const OUT_DIR = join(REPO_ROOT, 'build/images');
const KEY_FILE = join(OUT_DIR, 'e2e-inputs.sha256');
/** What the images are made of, in the repository. */
const INPUTS = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'dataplane',
  'operator',
  'scripts/image',
  'scripts/redis-node',
];
/** What they are made of, from the machine (ldd's libraries come with these). */
const PACKAGES = ['redis-server', 'redis-tools', 'libc6', 'dash', 'coreutils', 'libssl3'];

function inputsDigest(): string {
  const hash = createHash('sha256');
  const files = run('git', [
    '-C',
    REPO_ROOT,
    'ls-files',
    '-co',
    '--exclude-standard',
    '-z',
    '--',
    ...INPUTS,
  ])
    .split('\0')
    .filter((file) => file !== '')
    .sort();
  for (const file of files) {
    const path = join(REPO_ROOT, file);
    hash.update(`${file}\0`);
    if (existsSync(path)) hash.update(readFileSync(path));
  }
  const packages = spawnSync('dpkg-query', ['-W', ...PACKAGES], { encoding: 'utf8' });
  hash.update(packages.stdout ?? '');
  return hash.digest('hex');
}

function archive(name: ImageName): ProjectImage {
  const file = join(OUT_DIR, `${name}.tar`);
  const [manifest] = JSON.parse(run('tar', ['-xOf', file, 'manifest.json'])) as {
    Config: string;
    RepoTags: string[];
  }[];
  const reference = `docker.io/${imageTag(IMAGES[name])}`;
  if (
    manifest === undefined ||
    !manifest.RepoTags.some((tag) => `docker.io/${tag}` === reference)
  ) {
    throw new Error(`${file} is not tagged ${reference}`);
  }
  return { reference, file, id: `sha256:${manifest.Config.replace(/\.json$/, '')}` };
}

let built: Promise<Record<ImageName, ProjectImage>> | undefined;

/** Both images, built by `npm run image` unless build/images holds them for these inputs. */
export function projectImages(): Promise<Record<ImageName, ProjectImage>> {
  built ??= timed('project images (npm run image, or reused)', () => {
    const key = inputsDigest();
    const names = Object.keys(IMAGES) as ImageName[];
    const fresh =
      existsSync(KEY_FILE) &&
      readFileSync(KEY_FILE, 'utf8').trim() === key &&
      names.every((name) => existsSync(join(OUT_DIR, `${name}.tar`)));
    if (!fresh) {
      run('npm', ['run', 'image'], { timeoutMs: 900_000, cwd: REPO_ROOT });
      writeFileSync(KEY_FILE, `${key}\n`);
    }
    return Object.fromEntries(names.map((name) => [name, archive(name)])) as Record<
      ImageName,
      ProjectImage
    >;
  });
  return built;
}
