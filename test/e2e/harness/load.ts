/**
 * Steady client load from inside the cluster, as a component team would put it on a
 * BlobCache: a Pod that uploads random blobs through the Service and reads back blobs it
 * was acknowledged, logging each call (start and end time, method, key, status, curl's
 * exit code, whether the bytes matched). Scenarios wait on its progress (acknowledged uploads), stop it, then check
 * every acknowledged blob and summarise the errors clients saw.
 */
import { blobClientPod, inClient } from './client.ts';
import { cluster } from './cluster.ts';
import { log } from './progress.ts';
import { waitPodReady } from './scenario.ts';
import { eventually } from '../../harness/eventually.ts';

/**
 * Bounded by count and time; stops early when /tmp/stop exists. A call waits longer than
 * the data plane's own bound on a request it cannot finish (its 60 s idle timeout, then a
 * 503), so a stalled tier shows as the server's answer, not as the client giving up.
 */
const LOAD_SCRIPT = `
CLIENT_WAIT=90
set -u
: > /tmp/load.log; : > /tmp/acked
deadline=$(( $(date +%s) + MAX_SECONDS ))
i=0
while [ ! -e /tmp/stop ] && [ "$i" -lt "$MAX_UPLOADS" ] && [ "$(date +%s)" -lt "$deadline" ]; do
  i=$((i + 1))
  head -c "$BLOB_BYTES" /dev/urandom > /tmp/blob
  key=$(md5sum /tmp/blob | cut -d' ' -f1)
  started=$(date +%s)
  code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time $CLIENT_WAIT -T /tmp/blob \\
    -H "Authorization: Bearer $WRITE_TOKEN" "$URL/v1/blobs/$key" 2>/tmp/why)
  rc=$?
  echo "$started $(date +%s) PUT $key $code $rc - $(tr -s ' \\n' '__' < /tmp/why | head -c 200)" >> /tmp/load.log
  case "$code" in 200|201) echo "$key" >> /tmp/acked ;; esac
  n=$(wc -l < /tmp/acked)
  if [ "$n" -gt 0 ]; then
    k=$(sed -n "$(( (i * 7919) % n + 1 ))p" /tmp/acked)
    started=$(date +%s)
    code=$(curl -sS -o /tmp/got -w '%{http_code}' --max-time $CLIENT_WAIT \\
      -H "Authorization: Bearer $READ_TOKEN" "$URL/v1/blobs/$k" 2>/tmp/why)
    rc=$?
    sum=$(md5sum /tmp/got | cut -d' ' -f1)
    same=different; [ "$sum" = "$k" ] && same=same
    echo "$started $(date +%s) GET $k $code $rc $same $(tr -s ' \\n' '__' < /tmp/why | head -c 200)" >> /tmp/load.log
  fi
done
touch /tmp/done
sleep 86400 & wait
`;

/**
 * Reads every acknowledged blob once; prints `<key> <status> same|different` per blob. A
 * read that could not connect (curl exit 7) reached no server and says nothing of the blob:
 * it is tried again, up to three times, each on a new connection (after a lost Pod, a
 * connect can still be sent to its address, see stale-flows.ts).
 */
const VERIFY_SCRIPT = `
CLIENT_WAIT=90
while read -r k; do
  tries=0
  while :; do
    tries=$((tries + 1))
    code=$(curl -s -o /tmp/check -w '%{http_code}' --max-time $CLIENT_WAIT \\
      -H "Authorization: Bearer $READ_TOKEN" "$URL/v1/blobs/$k")
    rc=$?
    if [ "$rc" -ne 7 ] || [ "$tries" -ge 3 ]; then break; fi
  done
  sum=$(md5sum /tmp/check | cut -d' ' -f1)
  same=different; [ "$sum" = "$k" ] && same=same
  echo "$k $code $same"
done < /tmp/acked
`;

export interface LoadCall {
  /** When the call started and ended (Unix seconds). */
  time: number;
  ended: number;
  /** curl's exit code: 0, or why no answer came (7: could not connect, 28: timed out). */
  curlExit: number;
  method: 'PUT' | 'GET';
  key: string;
  status: number;
  /** For GETs: whether the bytes' MD5 was the key. */
  same?: boolean;
  /** curl's own words when it failed, e.g. "Failed to connect … : No route to host". */
  why?: string;
}

export interface LoadOptions {
  blobBytes?: number;
  maxUploads?: number;
  maxSeconds?: number;
  /** Runs the load Pod in this zone. */
  zone?: string;
}

export class Load {
  readonly namespace: string;
  readonly pod: string;

  constructor(namespace: string, pod: string) {
    this.namespace = namespace;
    this.pod = pod;
  }

  /** Starts a load Pod against BlobCache `cache` and waits for it to run. */
  static async start(
    namespace: string,
    cache: string,
    options: LoadOptions = {},
    pod = 'load',
  ): Promise<Load> {
    const spec = blobClientPod(namespace, pod, cache, options.zone) as {
      spec: { containers: { command: string[]; env: object[] }[] };
    };
    const container = spec.spec.containers[0]!;
    container.command = ['/bin/sh', '-c', LOAD_SCRIPT];
    container.env.push(
      { name: 'BLOB_BYTES', value: String(options.blobBytes ?? 256 * 1024) },
      { name: 'MAX_UPLOADS', value: String(options.maxUploads ?? 5000) },
      { name: 'MAX_SECONDS', value: String(options.maxSeconds ?? 900) },
    );
    await cluster().kubectl.apply(spec);
    await waitPodReady(namespace, pod);
    return new Load(namespace, pod);
  }

  async calls(): Promise<LoadCall[]> {
    const text = await inClient(this.namespace, this.pod, 'cat /tmp/load.log');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [time = '0', ended = '0', method = '', key = '', status = '0', exit = '0', same] =
          line.split(' ');
        const why = line.split(' ')[7]?.replace(/_/g, ' ').trim();
        return {
          time: Number(time),
          ended: Number(ended),
          curlExit: Number(exit),
          method: method as LoadCall['method'],
          key,
          status: Number(status),
          ...(same === undefined || same === '-' ? {} : { same: same === 'same' }),
          ...(why === undefined || why === '' ? {} : { why }),
        };
      });
  }

  async acknowledged(): Promise<string[]> {
    const text = await inClient(this.namespace, this.pod, 'cat /tmp/acked');
    return text.split('\n').filter((line) => line !== '');
  }

  /** Waits until `more` uploads beyond those acknowledged now are acknowledged. */
  async waitAcknowledged(more: number, what: string): Promise<void> {
    const start = (await this.acknowledged()).length;
    await eventually(
      `${more} more acknowledged uploads ${what}`,
      async () => (await this.acknowledged()).length >= start + more,
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
  }

  /** Stops the loop and waits for its last call to finish. */
  async stop(): Promise<void> {
    await inClient(this.namespace, this.pod, 'touch /tmp/stop');
    await eventually(
      'the load to stop',
      async () => {
        await inClient(this.namespace, this.pod, 'test -e /tmp/done');
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
  }

  /** Reads back every acknowledged blob: the ones not served whole and right. */
  async unreadable(): Promise<string[]> {
    const text = await cluster().kubectl.exec(this.namespace, this.pod, [
      'sh',
      '-c',
      VERIFY_SCRIPT,
    ]);
    return text.split('\n').filter((line) => line !== '' && !/ 200 same$/.test(line));
  }
}

/**
 * Whether a call was answered whole: 200 or 201, and curl saw the whole transfer. A transfer
 * cut short (curl exit 18: fewer bytes than `Content-Length`; 56: the connection reset) is
 * how a client learns an answer is not complete, e.g. from a Pod killed mid-answer.
 */
export function answeredWhole(call: LoadCall): boolean {
  return (call.status === 200 || call.status === 201) && call.curlExit === 0;
}

/** GETs whose bytes were not the blob although the transfer was whole: damage served as complete. */
export function servedDamaged(calls: readonly LoadCall[]): LoadCall[] {
  return calls.filter(
    (call) => answeredWhole(call) && call.method === 'GET' && call.same === false,
  );
}

/** The end of curl's words, without what varies per call: `: No route to host`. */
function reason(call: LoadCall): string {
  const last = call.why?.split(': ').at(-1);
  return last === undefined ? '' : `: ${last}`;
}

/** Error statuses by method and code, with the seconds they spanned: `PUT 503 ×4 (12 s)`. */
export function summariseErrors(calls: readonly LoadCall[]): string[] {
  const groups = new Map<string, number[]>();
  for (const call of calls) {
    if (answeredWhole(call)) continue;
    const label =
      call.status === 0
        ? `${call.method} no answer (curl exit ${call.curlExit}${reason(call)})`
        : call.curlExit !== 0
          ? `${call.method} ${call.status} cut short (curl exit ${call.curlExit})`
          : `${call.method} ${call.status}`;
    groups.set(label, [...(groups.get(label) ?? []), call.time]);
  }
  return [...groups].map(([label, times]) => {
    const span = Math.max(...times) - Math.min(...times);
    return `${label} ×${times.length} (over ${span} s)`;
  });
}

/**
 * The longest spell of failed calls, in seconds: from the start of a failed call to the end
 * of the last failed call before the next answered one (200/201) started.
 */
export function longestFailedSpell(calls: readonly LoadCall[]): number {
  let longest = 0;
  let spell: { from: number; to: number } | undefined;
  for (const call of [...calls].sort((a, b) => a.time - b.time)) {
    if (answeredWhole(call)) {
      spell = undefined;
      continue;
    }
    spell =
      spell === undefined ? { from: call.time, to: call.ended } : { ...spell, to: call.ended };
    longest = Math.max(longest, spell.to - spell.from);
  }
  return longest;
}

/** Logs what the clients saw: totals and every kind of error. */
export function reportLoad(scenario: string, calls: readonly LoadCall[]): void {
  const puts = calls.filter((call) => call.method === 'PUT').length;
  const gets = calls.length - puts;
  const errors = summariseErrors(calls);
  log(
    `${scenario}: ${puts} uploads, ${gets} reads; errors: ${errors.length === 0 ? 'none' : errors.join(', ')}`,
  );
}
