/**
 * Scenario 5: every Redis Pod of a BlobCache deleted at once. Redis keeps no data on disk,
 * so the cache comes back empty: the operator re-forms the cluster (a new data set, a new
 * incarnation), its backfill Job warms it from S3 on the Nodes, the BlobCache says `Warm`,
 * and the blobs stored before are served from Redis again (`X-Cache: hit`), whole.
 * The blobs are in S3 before the Pods go: what WriteBehind had not yet copied when every
 * Redis node died at once is the mode's documented risk, not this scenario's.
 */
import { expect } from 'chai';
import { eventually } from '../harness/eventually.ts';
import {
  conditionOf,
  getBlobCache,
  missingFromS3,
  settled,
  smallBlobCache,
  tierSelector,
  waitSettled,
  type BlobCacheObject,
} from './harness/blobcache.ts';
import { getBlob, inClient, putRandomBlob, startBlobClient } from './harness/client.ts';
import { cluster } from './harness/cluster.ts';
import { useOperator } from './harness/operator.ts';
import { log, timed } from './harness/progress.ts';
import { clusterCheck, clusterNodes, redisHost } from './harness/redis-view.ts';
import { useNamespace } from './harness/scenario.ts';

const NAME = 'rewarmed';
const BLOBS = 12;
const PARTITIONS = 2;

interface Backfill {
  incarnation?: string;
  phase?: string;
  job?: string;
  loadedBlobs?: number;
}

const backfillOf = (cache: BlobCacheObject) => cache.status?.backfill as Backfill | undefined;

/** Waits for the backfill of a data set other than `not` to succeed with `Warm` True. */
async function waitWarm(namespace: string, not?: string): Promise<Backfill> {
  let last: BlobCacheObject | undefined;
  try {
    return await eventually(
      `${namespace}/${NAME} to be Warm`,
      async () => {
        last = await getBlobCache(namespace, NAME);
        const backfill = backfillOf(last);
        const warm = conditionOf(last, 'Warm')?.status === 'True';
        const fresh = backfill?.incarnation !== undefined && backfill.incarnation !== not;
        return warm && fresh && backfill?.phase === 'Succeeded' ? backfill : null;
      },
      { timeoutMs: 600_000, intervalMs: 1000 },
    );
  } catch (error) {
    throw new Error(`${String(error)}; last status: ${JSON.stringify(last?.status)}`, {
      cause: error,
    });
  }
}

interface PodSummary {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: { phase?: string };
}

async function podsOf(namespace: string, selector: string): Promise<PodSummary[]> {
  const list = await cluster().kubectl.json<{ items: PodSummary[] }>([
    'get',
    'pods',
    '-n',
    namespace,
    '-l',
    selector,
  ]);
  return list.items;
}

describe('Every Redis Pod deleted at once', function () {
  this.timeout(900_000);
  const namespace = useNamespace('wiped');
  useOperator();
  const stored: string[] = [];
  let first: Backfill;

  before(async function () {
    this.timeout(600_000);
    await cluster().kubectl.apply(
      ...(await smallBlobCache(namespace.name, NAME, {
        shards: 3,
        httpReplicas: 2,
        spec: { backfill: { policy: 'OnColdStart', parallelism: PARTITIONS } },
      })),
    );
    await timed('redis wiped: cache settled', () => waitSettled(namespace.name, NAME));
    // The first data set is a cold start too (of an empty bucket).
    first = await waitWarm(namespace.name);
    await startBlobClient(namespace.name, 'inspector', NAME);
    for (let i = 0; i < BLOBS; i++) {
      const upload = await putRandomBlob(namespace.name, 'inspector', 256 * 1024 + i);
      expect(upload.status, `upload ${i}`).to.equal(201);
      stored.push(upload.key);
    }
    expect(await missingFromS3(`${namespace.name}-${NAME}`, stored)).to.deep.equal([]);
  });

  it('re-forms the Redis Cluster after every Redis Pod is deleted at once', async () => {
    const selector = tierSelector(NAME, 'redis');
    const gone = new Set((await podsOf(namespace.name, selector)).map((pod) => pod.metadata.uid));
    expect(gone.size, 'Redis Pods before').to.equal(6);
    const started = Date.now();
    await cluster().kubectl.run([
      'delete',
      'pods',
      '-n',
      namespace.name,
      '-l',
      selector,
      '--wait=false',
    ]);
    await eventually(
      'six new Redis Pods',
      async () => {
        const pods = await podsOf(namespace.name, selector);
        return pods.length === 6 && pods.every((pod) => !gone.has(pod.metadata.uid));
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    // The status may still say settled from before the deletion: wait for the cluster
    // itself too, clean and whole again over the new Pods.
    const host = redisHost(namespace.name, NAME);
    await timed('redis wiped: cluster re-formed and settled', () =>
      eventually(
        'the Redis Cluster to re-form and the BlobCache to settle',
        async () => {
          if (!settled(await getBlobCache(namespace.name, NAME))) return false;
          if (!(await clusterCheck(namespace.name, 'inspector', host)).ok) return false;
          const nodes = await clusterNodes(namespace.name, 'inspector', host);
          const masters = nodes.filter((node) => node.flags.includes('master')).length;
          const replicas = nodes.filter((node) => node.flags.includes('slave')).length;
          return masters === 3 && replicas === 3;
        },
        { timeoutMs: 600_000, intervalMs: 2000 },
      ),
    );
    log(
      `redis wiped: re-formed ${((Date.now() - started) / 1000).toFixed(1)} s after the deletion`,
    );
    const check = await clusterCheck(namespace.name, 'inspector', host);
    expect(check.ok, check.output).to.equal(true);
  });

  it('runs the backfill Job of the new data set on the Nodes, and reports Warm', async () => {
    const after = await timed('redis wiped: backfill done', () =>
      waitWarm(namespace.name, first.incarnation),
    );
    expect(after.incarnation, 'a new data set').to.not.equal(first.incarnation);
    expect(after.job, 'a Job of its own').to.not.equal(first.job);
    expect(after.loadedBlobs, 'blobs loaded').to.be.at.least(BLOBS);
    const job = await cluster().kubectl.json<{ status: { succeeded?: number } }>([
      'get',
      'job',
      after.job!,
      '-n',
      namespace.name,
    ]);
    expect(job.status.succeeded, 'partitions done').to.equal(PARTITIONS);
    const pods = await podsOf(namespace.name, `job-name=${after.job!}`);
    const succeeded = pods.filter((pod) => pod.status.phase === 'Succeeded');
    expect(succeeded.length, 'backfill Pods that succeeded').to.be.at.least(PARTITIONS);
    for (const pod of succeeded) expect(pod.spec.nodeName, pod.metadata.name).to.match(/^bc-e2e-/);
  });

  it('serves every blob stored before from Redis again (X-Cache: hit), whole', async () => {
    // In Redis before anything read it: the backfill put it there, not a read-through fill.
    const host = redisHost(namespace.name, NAME);
    const present = await inClient(
      namespace.name,
      'inspector',
      stored
        .map(
          (key) =>
            `redis-cli --no-auth-warning -a "$REDIS_PASSWORD" -c -h ${host} EXISTS 'bc:{${key}}:m'`,
        )
        .join('; '),
    );
    expect(present.trim().split(/\s+/), 'manifests in Redis').to.deep.equal(stored.map(() => '1'));
    for (const key of stored) {
      const read = await getBlob(namespace.name, 'inspector', key);
      expect([read.status, read.md5, read.xCache], key).to.deep.equal([200, key, 'hit']);
    }
  });
});
