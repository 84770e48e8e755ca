import type { NodeInspection, ReplicaLink } from './admin.ts';
import { parseClusterNodes } from './cluster-nodes.ts';

/** `field:value` lines of INFO or CLUSTER INFO as a map (section headers skipped). */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** `slave0:ip=10.0.0.5,port=6379,state=online,offset=123,lag=0` → a ReplicaLink. */
function replicaLink(value: string): ReplicaLink {
  const parts = new Map(
    value.split(',').map((part) => {
      const equals = part.indexOf('=');
      return [part.slice(0, equals), part.slice(equals + 1)] as const;
    }),
  );
  return {
    address: `${parts.get('ip') ?? ''}:${parts.get('port') ?? ''}`,
    online: parts.get('state') === 'online',
    offset: Number(parts.get('offset') ?? 0),
  };
}

/** What `inspect` read from a node (its replies as text), as a NodeInspection. */
export function parseInspection(replies: {
  nodes: string;
  clusterInfo: string;
  info: string;
  keys: number;
}): NodeInspection {
  const cluster = parseInfo(replies.clusterInfo);
  const info = parseInfo(replies.info);
  const role = info.get('role') === 'slave' ? 'replica' : 'master';
  const replicas = [...info.entries()]
    .filter(([field]) => /^slave\d+$/.test(field))
    .map(([, value]) => replicaLink(value));
  return {
    nodes: parseClusterNodes(replies.nodes),
    clusterOk: cluster.get('cluster_state') === 'ok',
    role,
    masterLinkUp: info.get('master_link_status') === 'up',
    replicationOffset: Number(
      (role === 'replica' ? info.get('slave_repl_offset') : info.get('master_repl_offset')) ?? 0,
    ),
    replicas,
    keys: replies.keys,
    usedMemoryBytes: Number(info.get('used_memory') ?? 0),
    maxMemoryBytes: Number(info.get('maxmemory') ?? 0),
  };
}
