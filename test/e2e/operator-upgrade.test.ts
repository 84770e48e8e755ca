/**
 * Scenario 7: the operator's life cycle through Helm. `helm upgrade` to a changed value
 * rolls the operator's Deployment, and the new Pod takes over the Lease and the work;
 * `helm uninstall` (docs/operations.md, as written) leaves nothing of the operator behind,
 * while the CRD and the caches stay, as the page says.
 */
import { expect } from 'chai';
import { kubernetesDocBlocks } from '../harness/doc-blocks.ts';
import { eventually } from '../harness/eventually.ts';
import { getBlobCache, smallBlobCache } from './harness/blobcache.ts';
import { cluster } from './harness/cluster.ts';
import {
  CHART,
  helm,
  OPERATOR_SELECTOR,
  RELEASE,
  RELEASE_NAMESPACE,
  shell,
  useOperator,
  waitLeader,
} from './harness/operator.ts';
import { useNamespace, waitRolledOut } from './harness/scenario.ts';

interface PodList {
  items: {
    metadata: { name: string };
    spec: { containers: { env?: { name: string; value?: string }[] }[] };
  }[];
}

async function operatorPods(): Promise<PodList['items']> {
  const pods = await cluster().kubectl.json<PodList>([
    'get',
    'pods',
    '-n',
    RELEASE_NAMESPACE,
    '-l',
    OPERATOR_SELECTOR,
  ]);
  return pods.items;
}

/** Waits until the BlobCache's HTTP Deployment asks for `replicas` and its status is current. */
async function waitReconciled(namespace: string, name: string, replicas: number): Promise<void> {
  const { kubectl } = cluster();
  await eventually(
    `${namespace}/${name} reconciled to ${replicas} HTTP replicas`,
    async () => {
      const deployment = await kubectl.json<{ spec: { replicas: number } }>([
        'get',
        'deployment',
        `${name}-http`,
        '-n',
        namespace,
      ]);
      const cache = await getBlobCache(namespace, name);
      return (
        deployment.spec.replicas === replicas &&
        cache.status?.observedGeneration === cache.metadata.generation
      );
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

describe('helm upgrade and helm uninstall of the operator', function () {
  this.timeout(300_000);
  const namespace = useNamespace('helm');
  useOperator();
  const name = 'small';

  before(async function () {
    this.timeout(180_000);
    // A cache for the operator to look after across the upgrade: one shard, Sync.
    await cluster().kubectl.apply(
      ...(await smallBlobCache(namespace.name, name, {
        shards: 1,
        replicasPerShard: 0,
        httpReplicas: 1,
        durability: 'Sync',
      })),
    );
    await waitReconciled(namespace.name, name, 1);
  });

  it('helm upgrade to a changed value rolls the Deployment; the new Pod leads and reconciles', async () => {
    const { kubectl } = cluster();
    const previous = await waitLeader();
    await helm(
      'upgrade',
      RELEASE,
      CHART,
      '-n',
      RELEASE_NAMESPACE,
      '--reuse-values',
      '--set',
      'logLevel=debug',
    );
    await waitRolledOut(RELEASE_NAMESPACE, `deployment/${RELEASE}`);
    const leader = await waitLeader({ not: previous });
    await eventually('the old operator Pod to be gone', async () => {
      const names = (await operatorPods()).map((pod) => pod.metadata.name);
      return names.length === 1 && names[0] === leader;
    });
    const [pod] = await operatorPods();
    const env = pod!.spec.containers[0]!.env ?? [];
    expect(env.find((variable) => variable.name === 'OPERATOR_LOG_LEVEL')?.value).to.equal('debug');
    // The successor does the work: a change made now is reconciled.
    await kubectl.run(['scale', 'blobcache', name, '-n', namespace.name, '--replicas=2']);
    await waitReconciled(namespace.name, name, 2);
  });

  it('helm uninstall, as written, leaves nothing of the operator; the CRD and the caches stay', async () => {
    const { kubectl } = cluster();
    const uninstall = operationsBlock('helm uninstall');
    const result = await shell(uninstall);
    expect(result.status, result.stderr).to.equal(0);
    await eventually(
      'the operator Pods to be gone',
      async () => (await operatorPods()).length === 0,
      {
        timeoutMs: 90_000,
        intervalMs: 500,
      },
    );
    // Every listable kind, in every namespace, by the release's label.
    const labelled = await kubectl.run([
      'get',
      (await listableKinds()).join(','),
      '--all-namespaces',
      '-l',
      `app.kubernetes.io/instance=${RELEASE}`,
      '-o',
      'name',
    ]);
    expect(labelled.trim()).to.equal('');
    // And by name: the release's namespace holds only what Kubernetes puts in every one.
    const left = await kubectl.run([
      'get',
      (await listableKinds(['--namespaced=true'])).join(','),
      '-n',
      RELEASE_NAMESPACE,
      '-o',
      'name',
    ]);
    expect(
      left
        .trim()
        .split('\n')
        .filter((line) => line !== '')
        .sort(),
    ).to.deep.equal(['configmap/kube-root-ca.crt', 'serviceaccount/default']);
    for (const kind of ['clusterrole', 'clusterrolebinding']) {
      expect(
        await kubectl.run(['get', kind, RELEASE, '--ignore-not-found', '-o', 'name']),
      ).to.equal('');
    }
    expect(await helm('list', '-A', '-q')).to.not.match(new RegExp(`^${RELEASE}$`, 'm'));
    // What the page promises stays: the CRD (the block's own check), the cache and its children.
    expect(result.stdout).to.match(/^blobcaches\.blobcache\.io\s/m);
    await getBlobCache(namespace.name, name);
    await kubectl.run(['get', 'deployment', `${name}-http`, '-n', namespace.name]);
    await kubectl.run(['get', 'statefulset', `${name}-redis-0`, '-n', namespace.name]);
  });
});

/** Every kind that can be listed but Events (which outlive what they tell of, by design). */
async function listableKinds(flags: string[] = []): Promise<string[]> {
  const kinds = await cluster().kubectl.run([
    'api-resources',
    '--verbs=list',
    '-o',
    'name',
    ...flags,
  ]);
  return kinds
    .trim()
    .split('\n')
    .filter((kind) => kind !== 'events' && kind !== 'events.events.k8s.io');
}

/** The docs/operations.md block that starts with `command`. */
function operationsBlock(command: string): string {
  const block = operationsBlocks().find((candidate) => candidate.script.startsWith(command));
  if (block === undefined) throw new Error(`docs/operations.md has no block starting ${command}`);
  return block.script;
}

function operationsBlocks() {
  return kubernetesDocBlocks().filter((block) => block.file === 'docs/operations.md');
}
