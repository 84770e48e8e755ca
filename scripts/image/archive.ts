/**
 * Writes an image as a docker-archive (the `docker save` layout that `docker load` and
 * `ctr images import` read): one uncompressed layer tar, a config JSON whose
 * `rootfs.diff_ids` names that layer's SHA-256, and `manifest.json` with the tags.
 * Entries are written in a fixed order with one fixed time, so the same inputs give the
 * same layer digest. Files are streamed from disk, never held whole in memory.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Header, type Pack } from 'tar-stream';
import type { Entry } from './rootfs.ts';

type HeaderArgument = Partial<Header> & Pick<Header, 'name'>;
import type { ImageSpec } from './spec.ts';

/** Adds one entry to a tar stream; resolves once its content is written. */
function addEntry(tar: Pack, header: HeaderArgument, content?: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve());
    if (header.type !== 'file') {
      tar.entry(header, done);
      return;
    }
    if (typeof content === 'string') {
      // A path: stream the file into the entry.
      const sink = tar.entry(header, done);
      pipeline(createReadStream(content), sink).catch(reject);
    } else tar.entry(header, content ?? Buffer.alloc(0), done);
  });
}

function headerOf(entry: Entry, mtime: Date): HeaderArgument {
  const common = {
    name: entry.path.slice(1) + (entry.type === 'directory' ? '/' : ''),
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    mtime,
  };
  switch (entry.type) {
    case 'directory':
      return { ...common, type: 'directory' };
    case 'symlink':
      return { ...common, type: 'symlink', linkname: entry.target };
    case 'file':
      return { ...common, type: 'file', size: entry.size };
    case 'content':
      return { ...common, type: 'file', size: entry.content.length };
  }
}

/**
 * Streams a tar built by `fill` into `path` through `through` (e.g. a hashing Transform);
 * on a failure the partial file is removed.
 */
async function writeTar(
  path: string,
  fill: (tar: Pack) => Promise<void>,
  through: Transform = new PassThrough(),
): Promise<void> {
  const tar = pack();
  const written = pipeline(tar, through, createWriteStream(path));
  try {
    await fill(tar);
    tar.finalize();
    await written;
  } catch (error) {
    tar.destroy();
    await written.catch(() => undefined);
    await rm(path, { force: true });
    throw error;
  }
}

/** Writes the layer tar to `path`; returns its SHA-256 (the image's diff_id) and size. */
export async function writeLayer(
  entries: Entry[],
  path: string,
  mtime: Date,
): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  await writeTar(
    path,
    async (tar) => {
      for (const entry of entries) {
        const header = headerOf(entry, mtime);
        if (entry.type === 'file') {
          // A file that changed since it was listed would corrupt the tar: check its size.
          const now = await stat(entry.source);
          if (now.size !== entry.size) throw new Error(`${entry.source} changed while building`);
          await addEntry(tar, header, entry.source);
        } else await addEntry(tar, header, entry.type === 'content' ? entry.content : undefined);
      }
    },
    hashing,
  );
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** The image config (the OCI/Docker "container config" the runtime reads). */
export function imageConfig(spec: ImageSpec, diffId: string, created: Date, labels = {}) {
  return {
    architecture: 'amd64',
    os: 'linux',
    created: created.toISOString(),
    config: {
      User: spec.user,
      WorkingDir: spec.workingDir,
      Env: Object.entries(spec.env).map(([name, value]) => `${name}=${value}`),
      Cmd: spec.cmd,
      ExposedPorts: Object.fromEntries(spec.exposedPorts.map((port) => [`${port}/tcp`, {}])),
      Labels: {
        ...labels,
        ...Object.fromEntries(
          Object.entries(spec.entryPoints).map(([name, command]) => [
            `io.blobcache.entrypoint.${name}`,
            JSON.stringify(command),
          ]),
        ),
      },
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: created.toISOString(), created_by: 'npm run image' }],
  };
}

/** Packs a written layer and its config into a docker-archive at `path`. */
export async function writeDockerArchive(options: {
  path: string;
  layerPath: string;
  layerDigest: string;
  config: object;
  tags: string[];
  mtime: Date;
}): Promise<void> {
  const { path, layerPath, layerDigest, config, tags, mtime } = options;
  const configText = JSON.stringify(config);
  const configHex = createHash('sha256').update(configText).digest('hex');
  const layerHex = layerDigest.replace(/^sha256:/, '');
  const layerName = `${layerHex}/layer.tar`;
  const manifest = [{ Config: `${configHex}.json`, RepoTags: tags, Layers: [layerName] }];
  const repositories: Record<string, Record<string, string>> = {};
  for (const tag of tags) {
    const at = tag.lastIndexOf(':');
    (repositories[tag.slice(0, at)] ??= {})[tag.slice(at + 1)] = layerHex;
  }
  const file = (tar: Pack, name: string, text: string) =>
    addEntry(tar, { name, type: 'file', mode: 0o644, mtime }, Buffer.from(text));
  const { size } = await stat(layerPath);
  await writeTar(path, async (tar) => {
    await addEntry(tar, { name: `${layerHex}/`, type: 'directory', mode: 0o755, mtime });
    await addEntry(tar, { name: layerName, type: 'file', mode: 0o644, size, mtime }, layerPath);
    await file(tar, `${configHex}.json`, configText);
    await file(tar, 'manifest.json', JSON.stringify(manifest));
    await file(tar, 'repositories', JSON.stringify(repositories));
  });
  await rm(layerPath);
}
