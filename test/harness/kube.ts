import {
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { startWatches, type Watches } from '../../operator/src/controller/watches.ts';
import { collectionPath, WATCHED } from '../../operator/src/kube/access.ts';
import { withCache, type ObjectCache } from '../../operator/src/kube/cache.ts';
import { makeKubeClient, type KubeClient } from '../../operator/src/kube/client.ts';
import { listAll } from '../../operator/src/kube/raw-list.ts';
import { startApiProxy, type ApiProxy } from './api-proxy.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { REPO_ROOT } from './dataplane.ts';
import { eventually } from './eventually.ts';
import { silentLogger } from './logger.ts';

/**
 * A KubeConfig for the control plane: the admin user unless `user` gives other credentials
 * (see ControlPlane.clientCertificate); `server` points it elsewhere (e.g. an ApiProxy).
 */
export function kubeConfigFor(
  plane: ControlPlane,
  options: { server?: string; user?: { certData: string; keyData: string } } = {},
): KubeConfig {
  const config = new KubeConfig();
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  const user = options.user ?? plane;
  config.loadFromOptions({
    clusters: [
      {
        name: 'test',
        server: options.server ?? plane.server,
        caData: b64(plane.caData),
        skipTLSVerify: false,
      },
    ],
    users: [{ name: 'user', certData: b64(user.certData), keyData: b64(user.keyData) }],
    contexts: [{ name: 'test', cluster: 'test', user: 'user' }],
    currentContext: 'test',
  });
  return config;
}

/**
 * Installs the BlobCache CRD from crds/ the way users do (kubectl apply), and waits until
 * it is established. (The typed client would drop fields such as `enum` and the
 * `x-kubernetes-*` extensions when serializing a CRD read from YAML.)
 */
export async function installCrd(plane: ControlPlane): Promise<void> {
  const crd = join(REPO_ROOT, 'crds/blobcache.io_blobcaches.yaml');
  const applied = plane.kubectl('apply', '--server-side', '-f', crd);
  if (applied.status !== 0) throw new Error(`kubectl apply of the CRD failed: ${applied.stderr}`);
  const waited = plane.kubectl(
    'wait',
    '--for=condition=Established',
    '--timeout=30s',
    'crd/blobcaches.blobcache.io',
  );
  if (waited.status !== 0) throw new Error(`The CRD was not established: ${waited.stderr}`);
  // Discovery can lag a moment behind Established.
  await sleep(500);
}

export function sample(name: string): KubernetesObject & { spec: Record<string, unknown> } {
  const [document] = parseAllDocuments(
    readFileSync(join(REPO_ROOT, 'crds/samples', `${name}.yaml`), 'utf8'),
  );
  return document!.toJS() as KubernetesObject & { spec: Record<string, unknown> };
}

/** A fresh namespace per test: without controllers, namespaces never finish deleting. */
export async function freshNamespace(config: KubeConfig, prefix = 't'): Promise<string> {
  const namespace = `${prefix}-${randomUUID().slice(0, 8)}`;
  await config
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: namespace } } });
  return namespace;
}

/**
 * The operator's view of a test control plane, as the controller builds it: the same
 * informer caches (fed directly by the API server) and a KubeClient whose reads come from
 * them and whose calls go through an ApiProxy, so that tests can count and fail them.
 */
export interface Testbed {
  plane: ControlPlane;
  /** Admin access straight to the API server, for the test's own reads and writes. */
  config: KubeConfig;
  objects: KubernetesObjectApi;
  proxy: ApiProxy;
  /** The operator's KubeClient: cached reads, calls through the proxy. */
  kube: KubeClient;
  watches: Watches;
  /** Waits until the caches hold exactly what the API server holds in `namespace`. */
  caughtUp(namespace: string): Promise<void>;
  stop(): Promise<void>;
}

/** A control plane with the BlobCache CRD installed, and an admin KubeConfig for it. */
export async function startControlPlaneWithCrd(): Promise<{
  plane: ControlPlane;
  config: KubeConfig;
}> {
  const plane = await startControlPlane();
  try {
    await installCrd(plane);
    return { plane, config: kubeConfigFor(plane) };
  } catch (error) {
    await plane.stop();
    throw error;
  }
}

export async function startTestbed(): Promise<Testbed> {
  const { plane, config } = await startControlPlaneWithCrd();
  try {
    const proxy = await startApiProxy(plane);
    const watches = startWatches({
      config,
      watched: WATCHED,
      enqueue: () => undefined,
      logger: silentLogger,
    });
    await watches.synced;
    const kube = withCache(
      makeKubeClient(kubeConfigFor(plane, { server: proxy.server })),
      watches.cache,
    );
    const caughtUp = (namespace: string) => cacheCaughtUp(config, watches.cache, namespace);
    return {
      plane,
      config,
      objects: KubernetesObjectApi.makeApiClient(config),
      proxy,
      kube,
      watches,
      caughtUp,
      async stop() {
        await watches.stop();
        await proxy.close();
        await plane.stop();
      },
    };
  } catch (error) {
    await plane.stop();
    throw error;
  }
}

/** Waits until `cache` holds exactly what the API server holds in `namespace` (the watched types). */
export async function cacheCaughtUp(
  config: KubeConfig,
  cache: ObjectCache,
  namespace: string,
): Promise<void> {
  await eventually(`the caches to catch up in ${namespace}`, async () => {
    for (const { type, labelSelector } of WATCHED) {
      const live = await listAll(config, type, collectionPath(type, namespace), labelSelector);
      if (cache.list(type, namespace).length !== live.items.length) return false;
      for (const item of live.items) {
        const mirror = cache.get(type, namespace, item.metadata!.name!);
        if (mirror?.metadata?.resourceVersion !== item.metadata?.resourceVersion) return false;
      }
    }
    return true;
  });
}

/** A JSON merge patch of a BlobCache's spec, as `kubectl patch --type merge` sends it. */
export function mergeSpec(
  objects: KubernetesObjectApi,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<KubernetesObject> {
  return objects.patch(
    {
      apiVersion: 'blobcache.io/v1alpha1',
      kind: 'BlobCache',
      metadata: { name, namespace },
      spec,
    } as KubernetesObject,
    undefined,
    undefined,
    undefined,
    undefined,
    PatchStrategy.MergePatch,
  );
}

/** Creates a BlobCache with the given spec (a bucket `bkt` unless the spec names a store). */
export function createBlobCache(
  config: KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown> = {},
): Promise<KubernetesObject> {
  return KubernetesObjectApi.makeApiClient(config).create({
    apiVersion: 'blobcache.io/v1alpha1',
    kind: 'BlobCache',
    metadata: { name, namespace },
    spec: { store: { s3: { bucket: 'bkt' } }, ...spec },
  } as KubernetesObject);
}

/** Whether the object exists in the API server. */
export function objectExists(
  config: KubeConfig,
  ref: { apiVersion: string; kind: string; name: string; namespace: string },
): Promise<boolean> {
  return KubernetesObjectApi.makeApiClient(config)
    .read({
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, namespace: ref.namespace },
    })
    .then(
      () => true,
      () => false,
    );
}
