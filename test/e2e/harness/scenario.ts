/**
 * What scenarios share: a namespace of their own, the client image's Pod shapes, and the
 * questions users ask of the cluster (which zone runs this Pod, what did it print).
 */
import { cluster } from './cluster.ts';
import { CLIENT_IMAGE } from './images.ts';
import { run } from './commands.ts';
import { log } from './progress.ts';
import { eventually } from '../../harness/eventually.ts';

export interface Namespace {
  readonly name: string;
}

/**
 * A fresh namespace for the enclosing `describe`, deleted (without waiting) after it; logs
 * the scenario's wall time, its own setup included.
 */
export function useNamespace(suffix: string): Namespace {
  const namespace = { name: `e2e-${suffix}` };
  let started = 0;
  before(async function () {
    this.timeout(120_000);
    started = Date.now();
    const { kubectl } = cluster();
    await kubectl.run(['create', 'namespace', namespace.name]);
    // Pods are refused until the controller-manager has made the default ServiceAccount.
    await eventually(
      `the default ServiceAccount of ${namespace.name}`,
      async () => {
        await kubectl.run(['get', 'serviceaccount', 'default', '-n', namespace.name]);
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  });
  after(async function () {
    this.timeout(60_000);
    log(`scenario ${namespace.name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await cluster().kubectl.run(['delete', 'namespace', namespace.name, '--wait=false']);
  });
  return namespace;
}

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/** A container of the client image running `script` with /bin/sh. */
export function clientContainer(name: string, script: string): Record<string, unknown> {
  return {
    name,
    image: CLIENT_IMAGE.reference,
    imagePullPolicy: 'Never',
    command: ['/bin/sh', '-c', script],
  };
}

/** A long-lived client Pod to `kubectl exec` commands in. */
export function clientPod(namespace: string, name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [clientContainer('client', 'trap "exit 0" TERM; sleep 86400 & wait')],
    },
  };
}

/** Pod template spread one per zone (`DoNotSchedule`), as the operator spreads its tiers. */
export function spreadOverZones(labels: Record<string, string>): Record<string, unknown> {
  return {
    topologySpreadConstraints: [
      {
        maxSkew: 1,
        topologyKey: ZONE_LABEL,
        whenUnsatisfiable: 'DoNotSchedule',
        labelSelector: { matchLabels: labels },
      },
    ],
  };
}

interface PodList {
  items: { metadata: { name: string; uid: string }; spec: { nodeName?: string } }[];
}

interface NodeList {
  items: { metadata: { name: string; labels?: Record<string, string> } }[];
}

/** The zone of the Node each selected Pod runs on, by Pod name. */
export async function zonesOf(namespace: string, selector: string): Promise<Map<string, string>> {
  const { kubectl } = cluster();
  const nodes = await kubectl.json<NodeList>(['get', 'nodes']);
  const zoneOfNode = new Map(
    nodes.items.map((node) => [node.metadata.name, node.metadata.labels?.[ZONE_LABEL] ?? '']),
  );
  const pods = await kubectl.json<PodList>(['get', 'pods', '-n', namespace, '-l', selector]);
  return new Map(
    pods.items.map((pod) => [pod.metadata.name, zoneOfNode.get(pod.spec.nodeName ?? '') ?? '']),
  );
}

export async function waitPodReady(namespace: string, pod: string): Promise<void> {
  await cluster().kubectl.run(
    ['wait', '--for=condition=Ready', `pod/${pod}`, '-n', namespace, '--timeout=120s'],
    { timeoutMs: 130_000 },
  );
}

/** Waits for `kubectl rollout status` of a Deployment or StatefulSet (`kind/name`). */
export async function waitRolledOut(namespace: string, resource: string): Promise<void> {
  await cluster().kubectl.run(['rollout', 'status', resource, '-n', namespace, '--timeout=180s'], {
    timeoutMs: 190_000,
  });
}

/** A running container, found on its Node, that `stop()` SIGKILLs (no SIGTERM first). */
export interface FoundContainer {
  restarts: number;
  stop(): Promise<void>;
}

/** Finds container `container` of a Pod on its Node, to kill it later (or at once). */
export async function findContainer(
  namespace: string,
  pod: string,
  container: string,
): Promise<FoundContainer> {
  const { kubectl, nodes } = cluster();
  const restarts = await restartCount(namespace, pod, container);
  const nodeName = await kubectl.run([
    'get',
    'pod',
    pod,
    '-n',
    namespace,
    '-o',
    'jsonpath={.spec.nodeName}',
  ]);
  const node = nodes.find((candidate) => candidate.spec.name === nodeName.trim());
  if (node === undefined) throw new Error(`Pod ${namespace}/${pod} runs on no harness Node`);
  const ids = (
    await node.crictl(
      'ps',
      '--quiet',
      '--name',
      `^${container}$`,
      '--label',
      `io.kubernetes.pod.name=${pod}`,
      '--label',
      `io.kubernetes.pod.namespace=${namespace}`,
    )
  )
    .split('\n')
    .filter((line) => line !== '');
  if (ids.length !== 1) throw new Error(`${ids.length} running containers ${container} in ${pod}`);
  return {
    restarts,
    // `crictl stop --timeout 0` sends no SIGTERM first.
    stop: async () => void (await node.crictl('stop', '--timeout', '0', ids[0]!)),
  };
}

/**
 * Kills a container as a crash would: SIGKILL to its processes from its Node. The kubelet
 * restarts it in the same Pod, with the same volumes. Returns the container's restart
 * count before the kill.
 */
export async function killContainer(
  namespace: string,
  pod: string,
  container: string,
): Promise<number> {
  const found = await findContainer(namespace, pod, container);
  await found.stop();
  return found.restarts;
}

export async function restartCount(
  namespace: string,
  pod: string,
  container: string,
): Promise<number> {
  const count = await cluster().kubectl.run([
    'get',
    'pod',
    pod,
    '-n',
    namespace,
    '-o',
    `jsonpath={.status.containerStatuses[?(@.name=="${container}")].restartCount}`,
  ]);
  return Number(count.trim());
}

/**
 * The Pod addresses (`ip:port`) kube-proxy sends a Service's ClusterIP traffic to, as it has
 * programmed them into the kernel (the DNAT targets of its iptables rules): what clients of
 * the Service reach now, which can lag behind the EndpointSlices.
 */
export function serviceBackends(namespace: string, service: string): string[] {
  const name = `${namespace}/${service}`;
  return run('iptables-save', ['-t', 'nat'])
    .split('\n')
    .filter((line) => line.includes(' -j DNAT ') && new RegExp(`"${name}[:"]`).test(line))
    .map((line) => /--to-destination (\S+)/.exec(line)?.[1] ?? '')
    .filter((target) => target !== '');
}

/** One change of something a scenario watches. */
export interface Change {
  /** Unix seconds, with milliseconds. */
  time: number;
  value: string;
}

/**
 * Records every change of what `read` returns, read again `intervalMs` after each read,
 * until stopped: a timeline to explain a failure by (which backend kube-proxy sent a
 * connection to at a moment, which address and readiness a Pod had).
 */
export function recordChanges(
  read: () => Promise<string>,
  intervalMs = 250,
): { stop(): Promise<Change[]> } {
  const changes: Change[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const value = await read().catch((error: unknown) => `(unread: ${String(error)})`);
      if (changes.at(-1)?.value !== value) changes.push({ time: Date.now() / 1000, value });
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return changes;
    },
  };
}
