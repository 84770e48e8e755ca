/**
 * The conntrack entries kube-proxy leaves behind when an endpoint is lost. In iptables mode
 * kube-proxy removes the endpoint from its rules, but deletes stale conntrack entries for
 * UDP and SCTP only. A client's SYN to the lost address, never answered, leaves an entry
 * (SYN_SENT, kept `nf_conntrack_tcp_timeout_syn_sent`, 120 s by default) that still
 * translates to that address. A later connect from the same client that picks the same
 * source port matches it and is translated to that address again (the entry's timer was
 * not even reset by the new SYN, as watched in /proc/net/nf_conntrack); the Node's ARP for
 * the address fails, and the client gets "host unreachable" after 3 s. A client that opens
 * connection after connection to one Service reuses source ports within that time: seen by
 * packet capture in the zone-loss scenario, a connect 33 s after one of the loss on the same
 * port, and another 91 s after.
 *
 * That is Kubernetes' networking, not the cache's, and docs/operations.md tells clients to
 * retry a failed connect. The harness does for TCP what kube-proxy does for UDP, once
 * kube-proxy has stopped sending to the lost addresses, so that a scenario's check of the
 * errors clients saw after the loss was noticed judges the cache alone.
 */
import { attempt } from './commands.ts';

/**
 * Deletes the machine's conntrack entries of unanswered connects (SYN_SENT) to `addresses`;
 * answers how many went.
 */
export function forgetUnansweredConnects(addresses: readonly string[]): number {
  let deleted = 0;
  for (const address of addresses) {
    // Exit status 1 when nothing matched; the count is on stderr either way.
    const result = attempt('conntrack', [
      '-D',
      '-p',
      'tcp',
      '--state',
      'SYN_SENT',
      '--reply-src',
      address,
    ]);
    const count = /(\d+) flow entries have been deleted/.exec(result.stderr);
    if (count === null) {
      throw new Error(`conntrack -D --reply-src ${address} failed: ${result.stderr.trim()}`);
    }
    deleted += Number(count[1]);
  }
  return deleted;
}
