/**
 * The README's Kubernetes quick start on real Nodes, as a user runs it: the images imported
 * into each Node's containerd with ctr, the chart installed with Helm (the operator runs as
 * a Pod under the chart's RBAC), the minimal sample applied with kubectl and then pointed at
 * an S3-compatible server; then what a user checks: the operator Ready and leading, every
 * child created, the Redis and HTTP Pods running over the three zones.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { docBlocks, type DocBlock } from '../harness/doc-blocks.ts';
import { eventually } from '../harness/eventually.ts';
import { freePorts } from '../harness/services.ts';
import {
  createBucket,
  getBlobCache,
  onHarnessS3,
  ownedBy,
  s3CredentialsSecret,
  sample,
  waitTierRunning,
} from './harness/blobcache.ts';
import { cluster } from './harness/cluster.ts';
import { getBlob, putRandomBlob, startBlobClient } from './harness/client.ts';
import {
  helm,
  imageIdOn,
  LEASE,
  operatorInstalled,
  OPERATOR_SELECTOR,
  RELEASE,
  RELEASE_NAMESPACE,
  shell,
  userEnvironment,
  waitLeader,
} from './harness/operator.ts';
import { log } from './harness/progress.ts';
import { projectImages } from './harness/project-images.ts';
import {
  clusterCheck,
  clusterNodes,
  redisHost,
  redisPlacement,
  replicasInMasterZone,
} from './harness/redis-view.ts';
import { waitRolledOut } from './harness/scenario.ts';

const endToEnd = (file: string, section?: string): DocBlock[] =>
  docBlocks(file, section).filter((block) => block.check === 'end-to-end');

/** The README quick start's blocks, in order: import, install, wait and call. */
function quickStart(): { importImages: DocBlock; install: DocBlock } {
  const blocks = docBlocks('README.md', '## Kubernetes');
  const importImages = blocks.find((block) => block.script.includes('ctr -n k8s.io images import'));
  const install = blocks.find((block) => block.script.startsWith('helm install'));
  if (importImages?.check !== 'end-to-end' || install === undefined) {
    throw new Error('The README quick start no longer has its import and install blocks');
  }
  return { importImages, install };
}

const NAMESPACE = 'default';
const NAME = 'droplets';
const CLIENT = 'blob-client';

describe('The README quick start on real Nodes', function () {
  this.timeout(600_000);
  const started = Date.now();

  before(async function () {
    this.timeout(900_000);
    await projectImages();
    // The quick start installs the release: one left by an earlier scenario goes first.
    if (await operatorInstalled())
      await helm('uninstall', RELEASE, '-n', RELEASE_NAMESPACE, '--wait');
  });

  after(async function () {
    this.timeout(120_000);
    await cluster().kubectl.run([
      'delete',
      'pod',
      CLIENT,
      '-n',
      NAMESPACE,
      '--ignore-not-found',
      '--wait=false',
    ]);
    await cluster().kubectl.run([
      'delete',
      'blobcache',
      NAME,
      '-n',
      NAMESPACE,
      '--ignore-not-found',
      '--wait=false',
    ]);
    log(`scenario quick start: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  it('imports both images into every Node with ctr, as written, and containerd holds them', async () => {
    const { importImages } = quickStart();
    const images = Object.values(await projectImages());
    await Promise.all(
      cluster().nodes.map(async (node) => {
        const socket = node.endpoint.replace(/^unix:\/\//, '');
        const result = await shell(importImages.script, { env: { CONTAINERD_ADDRESS: socket } });
        expect(result.status, `${node.spec.name}: ${result.stderr}`).to.equal(0);
      }),
    );
    for (const node of cluster().nodes) {
      for (const image of images) {
        // The image ID containerd reports is the digest of the archive's own config.
        expect(
          await imageIdOn(node, image.reference),
          `${image.reference} on ${node.spec.name}`,
        ).to.equal(image.id);
      }
    }
  });

  it('installs the operator with helm and applies the sample, as written', async () => {
    const result = await shell(quickStart().install.script);
    expect(result.status, result.stderr).to.equal(0);
    // `kubectl get blobcache`, the block's last command, lists the sample.
    expect(result.stdout).to.match(/^NAME\s/m);
    expect(result.stdout).to.match(/^droplets\s/m);
    expect(await helm('status', RELEASE, '-n', RELEASE_NAMESPACE)).to.match(/STATUS: deployed/);
  });

  it('runs the operator as a Pod of the chart, Ready and holding the leader Lease', async () => {
    const { kubectl } = cluster();
    await waitRolledOut(RELEASE_NAMESPACE, `deployment/${RELEASE}`);
    const leader = await waitLeader();
    const pods = await kubectl.json<{
      items: {
        metadata: { name: string };
        spec: { serviceAccountName: string; containers: { image: string }[] };
      }[];
    }>(['get', 'pods', '-n', RELEASE_NAMESPACE, '-l', OPERATOR_SELECTOR]);
    expect(pods.items.map((pod) => pod.metadata.name)).to.deep.equal([leader]);
    const [pod] = pods.items;
    expect(pod!.spec.serviceAccountName).to.equal(RELEASE);
    expect(pod!.spec.containers[0]!.image).to.equal(
      (await projectImages()).blobcache.reference.replace(/^docker\.io\//, ''),
    );
    const lease = await kubectl.json<{ spec: { holderIdentity: string } }>([
      'get',
      'lease',
      LEASE,
      '-n',
      RELEASE_NAMESPACE,
    ]);
    expect(lease.spec.holderIdentity).to.equal(leader);
  });

  it('creates every child once the sample points at an S3-compatible server', async () => {
    const { kubectl } = cluster();
    await createBucket(NAME);
    await kubectl.apply(
      s3CredentialsSecret(NAMESPACE, `${NAME}-s3`),
      onHarnessS3(sample('minimal.yaml'), `${NAME}-s3`),
    );
    const cache = await getBlobCache(NAMESPACE, NAME);
    const uid = cache.metadata.uid!;
    const shards = [0, 1, 2].map((shard) => `${NAME}-redis-${shard}`);
    const expected: Record<string, string[]> = {
      statefulsets: shards,
      services: [NAME, ...shards].sort(),
      poddisruptionbudgets: [`${NAME}-http`, ...shards].sort(),
      deployments: [`${NAME}-http`],
      configmaps: [`${NAME}-config`],
      secrets: [`${NAME}-api-tokens`, `${NAME}-redis`],
    };
    for (const [kind, names] of Object.entries(expected)) {
      await eventuallyOwned(kind, uid, names);
    }
    const config = await kubectl.json<{ data: Record<string, string> }>([
      'get',
      'configmap',
      `${NAME}-config`,
      '-n',
      NAMESPACE,
    ]);
    expect(config.data.BLOBCACHE_S3_ENDPOINT).to.equal(cluster().s3.endpoint);
  });

  it("runs the Redis Pods over the three zones, each shard's two in two, and the HTTP Pods in two zones", async () => {
    const redis = await waitTierRunning(NAMESPACE, NAME, 'redis', 6);
    const byShard = new Map<string, string[]>();
    for (const [pod, shard] of redis.shards) {
      byShard.set(shard, [...(byShard.get(shard) ?? []), redis.zones.get(pod)!]);
    }
    expect([...byShard.keys()].sort()).to.deep.equal(['0', '1', '2']);
    // Spread with the other shards too: no zone without a Redis Pod.
    expect(new Set(redis.zones.values()).size, [...redis.zones.values()].join(', ')).to.equal(3);
    for (const [shard, zones] of byShard) {
      expect(new Set(zones).size, `shard ${shard}: ${zones.join(', ')}`).to.equal(2);
    }
    // Until Redis serves, no HTTP Pod is Ready, so the rollout the S3 edit started stays
    // under way: its first Pods and its surge Pod all run.
    const http = await waitTierRunning(NAMESPACE, NAME, 'http', 2, { atLeast: true });
    expect(new Set(http.zones.values()).size, [...http.zones.values()].join(', ')).to.be.at.least(
      2,
    );
  });

  it('becomes Ready and answers a Pod at its Service URL, as the README shows', async () => {
    const block = endToEnd('README.md', '## Kubernetes').find((candidate) =>
      candidate.script.startsWith('kubectl wait blobcache/droplets'),
    );
    expect(block, 'the README block that waits and calls').to.not.equal(undefined);
    const result = await shell(block!.script, { timeoutMs: 660_000 });
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/^200 \{"status":"ready"\}$/m);
  });

  it('stores and serves blobs through http://droplets.default.svc:8080 for a client Pod', async () => {
    await startBlobClient(NAMESPACE, CLIENT, NAME);
    for (const bytes of [1024, 1024 * 1024 + 17, 5 * 1024 * 1024]) {
      const upload = await putRandomBlob(NAMESPACE, CLIENT, bytes);
      expect(upload.status, `PUT of ${bytes} bytes`).to.equal(201);
      const first = await getBlob(NAMESPACE, CLIENT, upload.key);
      expect(first.status).to.equal(200);
      expect(first.md5, 'the bytes served').to.equal(upload.key);
      const again = await getBlob(NAMESPACE, CLIENT, upload.key);
      expect([again.status, again.md5, again.xCache]).to.deep.equal([200, upload.key, 'hit']);
    }
  });

  it("has a clean Redis Cluster (redis-cli --cluster check from inside), no master in its replica's zone", async () => {
    const host = redisHost(NAMESPACE, NAME);
    const check = await clusterCheck(NAMESPACE, CLIENT, host);
    expect(check.ok, check.output).to.equal(true);
    const nodes = await clusterNodes(NAMESPACE, CLIENT, host);
    expect(nodes.filter((node) => node.flags.includes('master')).length).to.equal(3);
    expect(nodes.filter((node) => node.flags.includes('slave')).length).to.equal(3);
    expect(replicasInMasterZone(nodes, await redisPlacement(NAMESPACE, NAME))).to.deep.equal([]);
  });

  it("serves the operator's metrics through kubectl port-forward, as docs/operations.md shows", async () => {
    const [block] = endToEnd('docs/operations.md').filter((b) => b.script.includes('port-forward'));
    expect(block, 'the port-forward block').to.not.equal(undefined);
    // A free local port instead of the page's 8081 (tests never take fixed ports).
    const port = await freePorts(1);
    const script = block!.script
      .replaceAll('8081:8081', `${port}:8081`)
      .replaceAll('127.0.0.1:8081', `127.0.0.1:${port}`);
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], {
      env: userEnvironment(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    try {
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code, errors).to.equal(0);
    } finally {
      // The block leaves kubectl port-forward running in the background: end its group.
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    expect(output).to.match(/^blobcache_operator_reconciles_total\{/m);
  });
});

async function eventuallyOwned(kind: string, uid: string, names: string[]): Promise<void> {
  let last: string[] = [];
  await eventually(
    `${kind} ${names.join(', ')} owned by the BlobCache`,
    async () => {
      last = await ownedBy(NAMESPACE, kind, uid);
      return names.every((name) => last.includes(name));
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  ).catch(() => expect(last, kind).to.include.members(names));
}
