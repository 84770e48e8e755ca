/**
 * A real Kubernetes control plane for the operator tests, started the way controller-
 * runtime's envtest does: etcd and kube-apiserver on loopback, with a throwaway CA, a
 * serving certificate and an admin client certificate (CN=admin, O=system:masters).
 * Binaries come from KUBEBUILDER_ASSETS or from scripts/testenv/build-control-plane.sh.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from './dataplane.ts';
import { freePorts } from './services.ts';

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  caData: string;
  certData: string;
  keyData: string;
  /** The API server's own serving certificate and key (valid for 127.0.0.1 on any port). */
  servingCertData: string;
  servingKeyData: string;
  /** A kubeconfig file for kubectl. */
  kubeconfigPath: string;
  /** A client certificate for another user, signed by the control plane's CA. */
  clientCertificate(user: string, groups?: string[]): { certData: string; keyData: string };
  /** Runs the kubectl built with the control plane against it. */
  kubectl(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** Stops and starts kube-apiserver again (etcd keeps the data). */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

/** Folder with kube-apiserver, etcd and kubectl, built when missing. */
export function controlPlaneBinaries(): string {
  const result = spawnSync('bash', [join(REPO_ROOT, 'scripts/testenv/build-control-plane.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const folder = result.stdout.trim().split('\n').pop();
  if (result.status !== 0 || folder === undefined || folder === '') {
    throw new Error(
      'Could not build the control-plane binaries (scripts/testenv/build-control-plane.sh)',
    );
  }
  return folder;
}

function openssl(dir: string, ...args: string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
}

/** A key and a certificate signed by the test CA: `<name>.key`, `<name>.crt`. */
function sign(dir: string, name: string, subject: string, extensions: string): void {
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  );
}

function makeCertificates(dir: string): void {
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=blobcache-test-ca',
    '-days',
    '30',
    '-out',
    'ca.crt',
  );
  sign(
    dir,
    'serving',
    '/CN=kube-apiserver',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  );
  sign(dir, 'admin', '/CN=admin/O=system:masters', 'extendedKeyUsage=clientAuth\n');
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key');
  openssl(dir, 'ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

function start(binary: string, args: string[], log: string): ChildProcess {
  const out = openSync(log, 'a');
  return spawn(binary, args, { stdio: ['ignore', out, out] });
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const forced = sleep(10_000).then(() => child.kill('SIGKILL'));
  await Promise.race([exited, forced]);
  await exited;
}

export interface ControlPlaneOptions {
  /** More kube-apiserver flags, e.g. an audit policy and log. */
  apiServerArgs?: string[];
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bin = controlPlaneBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'blobcache-k8s-'));
  makeCertificates(dir);
  const etcdPort = await freePorts(2);
  const apiPort = await freePorts(1);
  const etcd = start(
    join(bin, 'etcd'),
    [
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPort + 1}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPort + 1}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPort + 1}`,
      '--unsafe-no-fsync=true',
    ],
    join(dir, 'etcd.log'),
  );
  const file = (name: string): string => join(dir, name);
  const apiArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiPort}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${file('serving.crt')}`,
    `--tls-private-key-file=${file('serving.key')}`,
    `--client-ca-file=${file('ca.crt')}`,
    `--service-account-issuer=https://127.0.0.1:${apiPort}/`,
    `--service-account-key-file=${file('sa.pub')}`,
    `--service-account-signing-key-file=${file('sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    '--allow-privileged=true',
    '--disable-admission-plugins=ServiceAccount',
    ...(options.apiServerArgs ?? []),
  ];
  let apiServer: ChildProcess | undefined;
  const caData = readFileSync(file('ca.crt'), 'utf8');
  const certData = readFileSync(file('admin.crt'), 'utf8');
  const keyData = readFileSync(file('admin.key'), 'utf8');
  const server = `https://127.0.0.1:${apiPort}`;
  const agent = new Agent({ ca: caData, cert: certData, key: keyData });
  const get = (path: string): Promise<number> =>
    new Promise((resolve) => {
      const req = request(`${server}${path}`, { agent }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 90_000;
    while ((await get('/readyz')) !== 200 || (await get('/api/v1/namespaces/default')) !== 200) {
      if (Date.now() > deadline)
        throw new Error(`kube-apiserver did not become ready; see ${file('kube-apiserver.log')}`);
      await sleep(250);
    }
  };
  const startApiServer = async (): Promise<void> => {
    apiServer = start(join(bin, 'kube-apiserver'), apiArgs, file('kube-apiserver.log'));
    await waitReady();
  };
  await startApiServer();
  const kubeconfigPath = file('kubeconfig');
  writeFileSync(
    kubeconfigPath,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: test, cluster: {server: "' +
        server +
        '", certificate-authority: "' +
        file('ca.crt') +
        '"}}]',
      'users: [{name: admin, user: {client-certificate: "' +
        file('admin.crt') +
        '", client-key: "' +
        file('admin.key') +
        '"}}]',
      'contexts: [{name: test, context: {cluster: test, user: admin}}]',
      'current-context: test',
      '',
    ].join('\n'),
  );
  let users = 0;
  return {
    server,
    caData,
    certData,
    keyData,
    servingCertData: readFileSync(file('serving.crt'), 'utf8'),
    servingKeyData: readFileSync(file('serving.key'), 'utf8'),
    kubeconfigPath,
    clientCertificate(user, groups = []) {
      const name = `user-${++users}`;
      const subject = `/CN=${user}${groups.map((group) => `/O=${group}`).join('')}`;
      sign(dir, name, subject, 'extendedKeyUsage=clientAuth\n');
      return {
        certData: readFileSync(file(`${name}.crt`), 'utf8'),
        keyData: readFileSync(file(`${name}.key`), 'utf8'),
      };
    },
    kubectl(...args: string[]) {
      const result = spawnSync(join(bin, 'kubectl'), ['--kubeconfig', kubeconfigPath, ...args], {
        encoding: 'utf8',
      });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
    async restartApiServer() {
      await stopProcess(apiServer);
      await startApiServer();
    },
    async stop() {
      agent.destroy();
      await stopProcess(apiServer);
      await stopProcess(etcd);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
