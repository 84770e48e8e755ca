import type { ClusterNode } from './admin.ts';

/**
 * Parses the reply of CLUSTER NODES (Redis 7): one node per line,
 * `<id> <ip:port@cport[,hostname[,key=value...]]> <flags> <master> <ping-sent> <pong-recv>
 * <config-epoch> <link-state> <slot> ...`, where a slot entry is `N`, `N-M`, `[N->-id]`
 * (migrating) or `[N-<-id]` (importing). Redis 7.2 adds `key=value` fields (shard-id) after
 * the hostname; they are skipped.
 */
export function parseClusterNodes(reply: string): ClusterNode[] {
  return reply
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map(parseLine);
}

function parseLine(line: string): ClusterNode {
  const [id, endpoint, flags, master, , pong, epoch, link, ...slotFields] = line.split(' ');
  if (id === undefined || endpoint === undefined || link === undefined) {
    throw new Error(`Unexpected CLUSTER NODES line: '${line}'`);
  }
  const [address = '', hostname] = endpoint.split(',');
  const named = hostname !== undefined && hostname !== '' && !hostname.includes('=');
  const node: ClusterNode = {
    id,
    address: address.split('@')[0] ?? '',
    ...(named ? { hostname } : {}),
    flags: flags === undefined || flags === 'noflags' ? [] : flags.split(','),
    masterId: master === undefined || master === '-' ? null : master,
    pongReceivedMs: Number(pong ?? 0) || 0,
    configEpoch: Number(epoch),
    connected: link === 'connected',
    slots: [],
    migrating: [],
    importing: [],
  };
  for (const field of slotFields) {
    const moving = /^\[(\d+)-([<>])-([0-9a-f]+)\]$/.exec(field);
    if (moving !== null) {
      const slot = Number(moving[1]);
      if (moving[2] === '>') node.migrating.push({ slot, to: moving[3]! });
      else node.importing.push({ slot, from: moving[3]! });
      continue;
    }
    const range = /^(\d+)(?:-(\d+))?$/.exec(field);
    if (range === null) throw new Error(`Unexpected slot field '${field}' in '${line}'`);
    node.slots.push([Number(range[1]), Number(range[2] ?? range[1])]);
  }
  return node;
}
