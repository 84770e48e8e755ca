/**
 * A component team's view of a BlobCache from inside the cluster: a client Pod (curl,
 * redis-cli) that holds the cache's tokens and Redis password from the Secrets the operator
 * generated, and calls http://<name>.<namespace>.svc:8080 as any HTTP client would.
 */
import { cluster } from './cluster.ts';
import { clientPod, waitPodReady, ZONE_LABEL } from './scenario.ts';

/**
 * The client Pod of BlobCache `cache`: `$URL`, `$WRITE_TOKEN`, `$READ_TOKEN`,
 * `$REDIS_PASSWORD`; in `zone` if given.
 */
export function blobClientPod(
  namespace: string,
  name: string,
  cache: string,
  zone?: string,
): Record<string, unknown> {
  const pod = clientPod(namespace, name) as {
    spec: { containers: Record<string, unknown>[]; nodeSelector?: Record<string, string> };
  };
  if (zone !== undefined) pod.spec.nodeSelector = { [ZONE_LABEL]: zone };
  const secret = (variable: string, secretName: string, key: string) => ({
    name: variable,
    valueFrom: { secretKeyRef: { name: secretName, key } },
  });
  pod.spec.containers[0]!.env = [
    { name: 'URL', value: `http://${cache}.${namespace}.svc:8080` },
    secret('WRITE_TOKEN', `${cache}-api-tokens`, 'write-token'),
    secret('READ_TOKEN', `${cache}-api-tokens`, 'read-token'),
    secret('REDIS_PASSWORD', `${cache}-redis`, 'password'),
  ];
  return pod;
}

export async function startBlobClient(
  namespace: string,
  name: string,
  cache: string,
  zone?: string,
): Promise<void> {
  await cluster().kubectl.apply(blobClientPod(namespace, name, cache, zone));
  await waitPodReady(namespace, name);
}

/** Runs a shell script in the client Pod; resolves with its stdout. */
export function inClient(namespace: string, pod: string, script: string): Promise<string> {
  return cluster().kubectl.exec(namespace, pod, ['sh', '-c', script]);
}

export interface Upload {
  key: string;
  status: number;
}

/** PUTs `bytes` random bytes under their MD5 with the write token. */
export async function putRandomBlob(
  namespace: string,
  pod: string,
  bytes: number,
): Promise<Upload> {
  const output = await inClient(
    namespace,
    pod,
    `head -c ${bytes} /dev/urandom > /tmp/put && key=$(md5sum /tmp/put | cut -d' ' -f1) && ` +
      `code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 -T /tmp/put ` +
      `-H "Authorization: Bearer $WRITE_TOKEN" "$URL/v1/blobs/$key") ; echo "$key $code"`,
  );
  const [key = '', status = '0'] = output.trim().split(' ');
  return { key, status: Number(status) };
}

export interface Download {
  status: number;
  /** MD5 of the bytes received. */
  md5: string;
  xCache: string;
}

/** GETs a blob with the read token. */
export async function getBlob(namespace: string, pod: string, key: string): Promise<Download> {
  const output = await inClient(
    namespace,
    pod,
    `code=$(curl -s -D /tmp/headers -o /tmp/get -w '%{http_code}' --max-time 60 ` +
      `-H "Authorization: Bearer $READ_TOKEN" "$URL/v1/blobs/${key}"); ` +
      `echo "$code $(md5sum /tmp/get | cut -d' ' -f1) $(tr -d '\\r' < /tmp/headers | ` +
      `sed -n 's/^[Xx]-[Cc]ache: //p')"`,
  );
  const [status = '0', md5 = '', xCache = ''] = output.trim().split(' ');
  return { status: Number(status), md5, xCache };
}
