/**
 * One end-to-end cluster per test run: bring-up, the handle scenarios use, and a teardown
 * that proves the machine is left as found. One run at a time per machine (a lock file);
 * a run that finds what a crashed run left cleans it up first, using that run's snapshot.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDns, startKubeProxy, startS3, type Addon, type S3Endpoint } from './addons.ts';
import { cleanUpMachine } from './cleanup.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { importImages, NODE_IMAGES, PAUSE_IMAGE, type ImageArchive } from './images.ts';
import type { Kubectl } from './kubectl.ts';
import { HOST_ADDRESS, LOCK_FILE, LOGS_DIR, NODES, RUN_DIR, SNAPSHOT_FILE } from './layout.ts';
import { setUpNetwork } from './network.ts';
import { log, timed } from './progress.ts';
import { keepLogs, lock, removeRunDir } from './run-folder.ts';
import { startNode, type KubeNode } from './node.ts';
import { makePki, type Pki } from './pki.ts';
import { differences, takeSnapshot, type MachineSnapshot } from './snapshot.ts';
import { eventually } from '../../harness/eventually.ts';
import { freePorts } from '../../harness/services.ts';

export interface Cluster {
  /** kubectl as the cluster admin. */
  kubectl: Kubectl;
  kubeconfig: string;
  nodes: readonly KubeNode[];
  /** The S3 endpoint Pods and tests use (versitygw on the host bridge). */
  s3: S3Endpoint;
  /** Imports docker-archive images into every Node (there is no registry to pull from). */
  importImages(images: readonly ImageArchive[]): Promise<void>;
}

interface RunState {
  snapshot: MachineSnapshot;
  controlPlane?: ControlPlane;
  addons: Addon[];
  nodes: KubeNode[];
  cluster?: Cluster;
}

let state: RunState | undefined;

/** The running cluster; only valid between the root hooks (hooks.ts). */
export function cluster(): Cluster {
  if (state?.cluster === undefined) throw new Error('The end-to-end cluster is not up');
  return state.cluster;
}

/**
 * How the machine differs from `before` in what a run adds or changes. What was there
 * before and is gone now was removed by its owner meanwhile (others' work on the machine
 * comes and goes, a benchmark's network namespace say): logged, not held against the run,
 * which removes nothing it did not make.
 */
function leftByTheRun(before: MachineSnapshot): string[] {
  const all = differences(before, takeSnapshot());
  const gone = all.filter((line) => / removed: /.test(line));
  if (gone.length > 0) log(`gone meanwhile, not the run's doing: ${gone.join('; ')}`);
  return all.filter((line) => !gone.includes(line));
}

/** Cleans up after a run that crashed, judged against the snapshot it saved. */
async function recoverCrashedRun(): Promise<void> {
  if (!existsSync(SNAPSHOT_FILE)) return;
  const before = JSON.parse(readFileSync(SNAPSHOT_FILE, 'utf8')) as MachineSnapshot;
  log('found the leftovers of an earlier run; cleaning up');
  await cleanUpMachine(before);
  const left = leftByTheRun(before);
  if (left.length > 0) {
    throw new Error(`An earlier run left the machine changed:\n${left.join('\n')}`);
  }
  removeRunDir([LOCK_FILE]);
}

async function bringUpNodes(
  run: RunState,
  controlPlane: ControlPlane,
  certificates: Pki,
): Promise<void> {
  const ports = await freePorts(NODES.length * 2);
  const resolvConf = join(RUN_DIR, 'resolv.conf');
  writeFileSync(resolvConf, `nameserver ${HOST_ADDRESS}\n`);
  await Promise.all(
    NODES.map(async (spec, index) => {
      const node = await startNode({
        spec,
        pki: certificates,
        apiServer: controlPlane.server,
        sandboxImage: PAUSE_IMAGE.reference,
        resolvConf,
        kubeletPort: ports + index * 2,
        healthzPort: ports + index * 2 + 1,
      });
      run.nodes.push(node);
      await importImages(node, NODE_IMAGES);
    }),
  );
  // One kubelet at a time: each binds the same hard-coded device plugin socket
  // (/var/lib/kubelet/device-plugins/kubelet.sock, whatever --root-dir says) after removing
  // it, and one that loses that race exits ("address already in use").
  for (const node of run.nodes) {
    node.startKubelet();
    await eventually(
      `Node ${node.spec.name} to register`,
      async () => {
        await controlPlane.kubectl.run(['get', 'node', node.spec.name, '-o', 'name']);
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
  }
  await controlPlane.kubectl.run(
    ['wait', '--for=condition=Ready', 'node', '--all', '--timeout=120s'],
    { timeoutMs: 130_000 },
  );
}

export async function bringUp(): Promise<Cluster> {
  const started = Date.now();
  await lock();
  await timed('recovery check', recoverCrashedRun);
  const snapshot = await timed('machine snapshot', takeSnapshot);
  writeFileSync(SNAPSHOT_FILE, JSON.stringify(snapshot));
  const run: RunState = { snapshot, addons: [], nodes: [] };
  state = run;
  setUpNetwork();
  const certificates = await timed('certificates', () => makePki(join(RUN_DIR, 'pki')));
  const dir = join(RUN_DIR, 'control-plane');
  mkdirSync(dir, { recursive: true });
  const port = await freePorts(11);
  const controlPlane = await timed('etcd, kube-apiserver, controller-manager, scheduler', () =>
    startControlPlane(dir, certificates, {
      etcdClient: port,
      etcdPeer: port + 1,
      apiServer: port + 2,
      controllerManager: port + 3,
      scheduler: port + 4,
    }),
  );
  run.controlPlane = controlPlane;
  const [s3, dns] = await timed('S3 server and CoreDNS', () =>
    Promise.all([
      startS3(dir, port + 5),
      startDns(dir, controlPlane, { health: port + 6, ready: port + 7 }),
    ]),
  );
  run.addons.push(s3, dns);
  await timed('three Nodes Ready (containerd, images, kubelet)', () =>
    bringUpNodes(run, controlPlane, certificates),
  );
  run.addons.push(
    await timed('kube-proxy', () =>
      startKubeProxy(dir, controlPlane, { healthz: port + 8, metrics: port + 9 }),
    ),
  );
  run.cluster = {
    kubectl: controlPlane.kubectl,
    kubeconfig: controlPlane.adminKubeconfig,
    nodes: run.nodes,
    s3,
    async importImages(images) {
      await Promise.all(run.nodes.map((node) => importImages(node, images)));
    },
  };
  log(`bring-up: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return run.cluster;
}

/**
 * Stops everything, cleans the machine and compares it with the snapshot taken before the
 * bring-up; throws, listing every difference, when they differ.
 */
export async function tearDown(): Promise<void> {
  const run = state;
  if (run === undefined) return;
  state = undefined;
  const started = Date.now();
  await timed('Nodes stopped', () => Promise.allSettled(run.nodes.map((node) => node.stop())));
  await timed('host services stopped', async () => {
    for (const addon of run.addons.reverse()) await addon.stop().catch(() => undefined);
    await run.controlPlane?.stop();
  });
  keepLogs();
  const failed = await timed('machine cleaned', () => cleanUpMachine(run.snapshot)).then(
    () => undefined,
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  const left = leftByTheRun(run.snapshot);
  if (failed !== undefined || left.length > 0) {
    // The snapshot stays: the next run retries the cleanup against it.
    rmSync(LOCK_FILE, { force: true });
    throw new Error(
      `The machine differs from before the run:\n${[String(failed ?? ''), ...left].join('\n')}`,
    );
  }
  removeRunDir();
  try {
    rmdirSync(RUN_DIR);
  } catch (error) {
    // A run waiting for the machine took the lock as this one let it go: the folder is its.
    if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw error;
  }
  log(`teardown: ${((Date.now() - started) / 1000).toFixed(1)} s; the machine is as found`);
  log(`component logs: ${LOGS_DIR}`);
}
