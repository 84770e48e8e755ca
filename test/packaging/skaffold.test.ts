/**
 * skaffold.yaml, without skaffold (no registry serves it): a current config version, every
 * path and Dockerfile target it names exists, its images are the project's, its custom
 * build command builds what skaffold asks for, and its Helm values render the chart with
 * the image skaffold built. (The dev BlobCache is applied to a real API server in
 * install.test.ts.)
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { SKAFFOLD } from './skaffold-config.ts';
import { IMAGES } from '../../scripts/image/spec.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { readDockerfile } from './dockerfile.ts';
import { find, renderChart, run } from './tools.ts';

/** skaffold's template keys for an image: IMAGE_REPO_blobcache_blobcache, ... */
const templateKey = (kind: string, image: string) =>
  `IMAGE_${kind}_${image.replace(/[^A-Za-z0-9]/g, '_')}`;

describe('skaffold.yaml', function () {
  this.timeout(300_000);
  const noDocker = SKAFFOLD.profiles.find((profile) => profile.name === 'no-docker');

  it('is a skaffold v2 config of the current version', () => {
    expect(SKAFFOLD.apiVersion).to.equal('skaffold/v4beta14');
    expect(SKAFFOLD.kind).to.equal('Config');
    expect(noDocker, 'profile no-docker').to.not.equal(undefined);
  });

  it("names only paths that exist and the Dockerfile's real targets, for the project's images", () => {
    const stages = readDockerfile(join(REPO_ROOT, 'Dockerfile')).map((stage) => stage.name);
    const repositories = Object.values(IMAGES).map((spec) => spec.repository);
    for (const artifacts of [SKAFFOLD.build.artifacts, noDocker!.build.artifacts]) {
      expect(artifacts.map((artifact) => artifact.image)).to.deep.equal(repositories);
      for (const artifact of artifacts) {
        expect(existsSync(join(REPO_ROOT, artifact.context)), artifact.context).to.be.true;
        if (artifact.docker !== undefined) {
          expect(existsSync(join(REPO_ROOT, artifact.docker.dockerfile))).to.be.true;
          expect(stages).to.include(artifact.docker.target);
        }
        for (const path of artifact.custom?.dependencies.paths ?? []) {
          expect(existsSync(join(REPO_ROOT, path)), path).to.be.true;
        }
      }
    }
    for (const path of [
      ...SKAFFOLD.manifests.rawYaml,
      ...SKAFFOLD.deploy.helm.releases.map((release) => release.chartPath),
    ]) {
      expect(existsSync(join(REPO_ROOT, path)), path).to.be.true;
    }
    // The dev BlobCache has the image fields skaffold is allowed to rewrite.
    const [selector] = SKAFFOLD.resourceSelector.allow;
    expect(selector!.groupKind).to.equal('BlobCache.blobcache.io');
    const dev = parse(readFileSync(join(REPO_ROOT, SKAFFOLD.manifests.rawYaml[0]!), 'utf8')) as {
      spec: { http: { image: string }; redis: { image: string } };
    };
    expect([dev.spec.http.image, dev.spec.redis.image]).to.deep.equal(repositories);
    expect(selector!.image).to.deep.equal(['.spec.http.image', '.spec.redis.image']);
  });

  it('the no-docker custom build command builds the image skaffold asks for', async () => {
    const out = await mkdtemp(join(tmpdir(), 'blobcache-skaffold-'));
    try {
      buildEach(out);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  const buildEach = (out: string) => {
    for (const artifact of noDocker!.build.artifacts) {
      const [command, ...args] = artifact.custom!.buildCommand.split(' ');
      const tag = `${artifact.image}:skaffold-test`;
      const built = run(command!, args, {
        // What skaffold gives a custom builder.
        env: {
          ...process.env,
          IMAGE: tag,
          PUSH_IMAGE: 'false',
          BUILD_CONTEXT: REPO_ROOT,
          BLOBCACHE_IMAGE_OUT: out,
        },
      });
      expect(built.status, built.stderr).to.equal(0);
      const name = artifact.image.split('/').pop()!;
      const manifest = run('tar', ['-xOf', join(out, `${name}.tar`), 'manifest.json']);
      expect((JSON.parse(manifest.stdout) as { RepoTags: string[] }[])[0]!.RepoTags).to.deep.equal([
        tag,
      ]);
    }
    // Pushing is refused with a reason, not attempted.
    const pushed = run('bash', ['scripts/image/skaffold-build.sh', 'redis'], {
      env: { ...process.env, IMAGE: 'blobcache/redis:x', PUSH_IMAGE: 'true' },
    });
    expect(pushed.status).to.not.equal(0);
    expect(pushed.stderr).to.include('cannot push');
  };

  it('its Helm values render the chart with the image skaffold built', () => {
    const [release] = SKAFFOLD.deploy.helm.releases;
    const values: Record<string, string> = {
      [templateKey('REPO', 'blobcache/blobcache')]: 'registry.example.test/blobcache',
      [templateKey('TAG', 'blobcache/blobcache')]: 'f00dcafe',
    };
    // skaffold fills {{.KEY}} from its build results; do the same.
    const sets = Object.entries(release!.setValueTemplates).map(
      ([key, template]) =>
        `${key}=${template.replace(/\{\{\.(\w+)\}\}/g, (_, name: string) => values[name] ?? '')}`,
    );
    expect(release!.namespace).to.equal('blobcache-system');
    const manifests = renderChart('--set', sets.join(','));
    const deployment = find(manifests, 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    };
    expect(deployment.spec.template.spec.containers[0]!.image).to.equal(
      'registry.example.test/blobcache:f00dcafe',
    );
  });
});
