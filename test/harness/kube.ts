import { CoreV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import type { ControlPlane } from './control-plane.ts';
import { REPO_ROOT } from './dataplane.ts';

export function kubeConfigFor(plane: ControlPlane): KubeConfig {
  const config = new KubeConfig();
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  config.loadFromOptions({
    clusters: [
      { name: 'test', server: plane.server, caData: b64(plane.caData), skipTLSVerify: false },
    ],
    users: [{ name: 'admin', certData: b64(plane.certData), keyData: b64(plane.keyData) }],
    contexts: [{ name: 'test', cluster: 'test', user: 'admin' }],
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
