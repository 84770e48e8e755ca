/**
 * The Kubernetes commands of the README and docs/operations.md, run as written (bash, from
 * the repository root, with helm and kubectl on PATH) against a real API server. Every
 * command block in those pages says how it is checked; blocks that need Nodes are left to
 * the end-to-end tier, and the test holds each page to saying so.
 */
import { expect } from 'chai';
import { dirname, join } from 'node:path';
import {
  controlPlaneBinaries,
  startControlPlane,
  type ControlPlane,
} from '../harness/control-plane.ts';
import { REPO_ROOT } from '../harness/dataplane.ts';
import { kubernetesDocBlocks } from '../harness/doc-blocks.ts';
import { helmBinary, run } from './tools.ts';

const CHECKS = ['docs.test.ts', 'end-to-end', 'images.test.ts', 'not run'];

const pages = kubernetesDocBlocks;

describe('the Kubernetes commands of the README and the docs', function () {
  this.timeout(300_000);
  let plane: ControlPlane;

  before(async function () {
    this.timeout(900_000);
    plane = await startControlPlane();
  });
  after(async () => {
    await plane?.stop();
  });

  it('say how each command block is checked', () => {
    const all = pages();
    expect(all.length).to.be.greaterThan(8);
    const unmarked = all.filter((block) => !CHECKS.includes(block.check));
    expect(unmarked.map((block) => `${block.file}:${block.line} (${block.check})`)).to.deep.equal(
      [],
    );
  });

  it('run as written against a real API server, in order', () => {
    const path = [
      dirname(helmBinary()),
      controlPlaneBinaries(),
      join(REPO_ROOT, 'node_modules/.bin'),
    ];
    const env = {
      ...process.env,
      PATH: [...path, process.env.PATH ?? ''].join(':'),
      KUBECONFIG: plane.kubeconfigPath,
    };
    const runnable = pages().filter((block) => block.check === 'docs.test.ts');
    expect(runnable.length).to.be.greaterThan(5);
    for (const block of runnable) {
      const result = run('bash', ['-euo', 'pipefail', '-c', block.script], { env });
      expect(
        result.status,
        `${block.file}:${block.line}\n${block.script}\n${result.stderr}`,
      ).to.equal(0);
    }
    // What the commands did is what the pages say they do.
    const cache = JSON.parse(
      plane.kubectl('get', 'blobcache', 'droplets', '-n', 'default', '-o', 'json').stdout,
    ) as { spec: { http: { replicas: number }; redis: { shards: number }; durability: string } };
    expect(cache.spec.http.replicas).to.equal(4);
    expect(cache.spec.redis.shards).to.equal(4);
    expect(cache.spec.durability).to.equal('Sync');
    const releases = run(helmBinary(), ['list', '-A', '-q'], { env });
    expect(releases.stdout.trim(), 'uninstalled').to.equal('');
    expect(plane.kubectl('get', 'crd', 'blobcaches.blobcache.io').status).to.equal(0);
  });

  it('the blocks left to other tests are the ones these tests run', () => {
    const images = pages().filter((block) => block.check === 'images.test.ts');
    // images.test.ts runs `npm run image` after the npm ci of .ci/run.
    expect(images.map((block) => block.script.split('#')[0]!.trim())).to.deep.equal([
      'npm ci && npm run image',
    ]);
  });
});
