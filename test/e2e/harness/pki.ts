/**
 * The cluster's certificates, made with openssl per run: a CA (ECDSA P-256), the API
 * server's serving certificate, a client certificate per component identity (the names
 * Kubernetes' built-in RBAC roles and the Node authorizer expect), and the service-account
 * signing key pair. Plus kubeconfig files that point at them.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './commands.ts';
import { HOST_ADDRESS, KUBERNETES_SERVICE_IP, NODES } from './layout.ts';

export interface Identity {
  certificate: string;
  key: string;
}

export interface Pki {
  dir: string;
  ca: string;
  serving: Identity;
  /** Service-account token signing key (private) and its public half. */
  serviceAccountKey: string;
  serviceAccountPublicKey: string;
  /** Client identities by name: admin, controller-manager, scheduler, proxy, dns, kubelet-client and one per Node. */
  clients: Record<string, Identity>;
}

const CLIENT_SUBJECTS: Record<string, string> = {
  admin: '/CN=admin/O=system:masters',
  'controller-manager': '/CN=system:kube-controller-manager',
  scheduler: '/CN=system:kube-scheduler',
  proxy: '/CN=system:kube-proxy',
  dns: '/CN=bc-e2e:coredns',
  // The API server's identity towards kubelets (logs, exec, port-forward).
  'kubelet-client': '/CN=kube-apiserver-kubelet-client/O=system:masters',
  ...Object.fromEntries(
    NODES.map((node) => [node.name, `/CN=system:node:${node.name}/O=system:nodes`]),
  ),
};

export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const openssl = (...args: string[]): void => {
    run(
      'openssl',
      args.map((arg) => arg.replace(/^@/, `${dir}/`)),
    );
  };
  const newKey = (name: string): void =>
    openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `@${name}.key`);
  newKey('ca');
  openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    '@ca.key',
    '-subj',
    '/CN=bc-e2e-ca',
    '-days',
    '7',
    '-out',
    '@ca.crt',
  );
  const sign = (name: string, subject: string, extensions: string): Identity => {
    newKey(name);
    openssl('req', '-new', '-key', `@${name}.key`, '-subj', subject, '-out', `@${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(
      'x509',
      '-req',
      '-in',
      `@${name}.csr`,
      '-CA',
      '@ca.crt',
      '-CAkey',
      '@ca.key',
      '-CAcreateserial',
      '-days',
      '7',
      '-extfile',
      `@${name}.ext`,
      '-out',
      `@${name}.crt`,
    );
    return { certificate: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const names = [
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    'IP:127.0.0.1',
    `IP:${HOST_ADDRESS}`,
    `IP:${KUBERNETES_SERVICE_IP}`,
  ];
  const serving = sign(
    'apiserver',
    '/CN=kube-apiserver',
    `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\n`,
  );
  const clients: Record<string, Identity> = {};
  for (const [name, subject] of Object.entries(CLIENT_SUBJECTS)) {
    clients[name] = sign(name, subject, 'extendedKeyUsage=clientAuth\n');
  }
  newKey('sa');
  openssl('ec', '-in', '@sa.key', '-pubout', '-out', '@sa.pub');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    serving,
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPublicKey: join(dir, 'sa.pub'),
    clients,
  };
}

/** Writes a kubeconfig for `identity` against `server` and returns its path. */
export function writeKubeconfig(
  path: string,
  server: string,
  ca: string,
  identity: Identity,
): string {
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'e2e', cluster: { server, 'certificate-authority': ca } }],
      users: [
        {
          name: 'e2e',
          user: { 'client-certificate': identity.certificate, 'client-key': identity.key },
        },
      ],
      contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'e2e' } }],
      'current-context': 'e2e',
    }),
  );
  return path;
}
