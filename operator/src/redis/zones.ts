/**
 * Which pod of each shard should be its master, given the zones the pods run in. Pure.
 *
 * Two rules, applied only where they can be met:
 * - within a shard whose pods span two zones or more, the master shares its zone with none
 *   of its replicas (so losing a zone never takes a master and all its copies);
 * - across shards, when the pods span three zones or more, no zone holds a majority of the
 *   masters (a failover needs the votes of a majority of masters: losing a zone that held
 *   the majority would leave the survivors unable to promote anyone).
 * The current master stays wherever it breaks neither rule, so a cluster that is fine is
 * never shuffled (and a master restarted in place, now a replica, is not fought over).
 */

export interface ZonePod {
  name: string;
  zone?: string;
}

export interface ShardPlacement {
  shard: number;
  pods: ZonePod[];
  /** The pod that is master now, if any. */
  master?: string;
}

export interface ZoneVerdict {
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

export interface ZonePlan {
  /** The master each shard should have. */
  masters: Map<number, string>;
  verdict: ZoneVerdict;
}

/** Pods a shard may have as master under the first rule (all of them when it cannot be met). */
function candidates(placement: ShardPlacement): { pods: ZonePod[]; colocated: boolean } {
  const counts = new Map<string, number>();
  for (const pod of placement.pods) counts.set(pod.zone!, (counts.get(pod.zone!) ?? 0) + 1);
  if (placement.pods.length < 2) return { pods: placement.pods, colocated: false };
  const alone = placement.pods.filter((pod) => counts.get(pod.zone!) === 1);
  if (counts.size < 2 || alone.length === 0) return { pods: placement.pods, colocated: true };
  return { pods: alone, colocated: false };
}

const byName = (a: ZonePod, b: ZonePod) => a.name.localeCompare(b.name);

export function placeMasters(shards: readonly ShardPlacement[]): ZonePlan {
  const masters = new Map<number, string>();
  if (shards.every((shard) => shard.pods.length === 0)) {
    return {
      masters,
      verdict: {
        status: 'Unknown',
        reason: 'NodesUnreachable',
        message: 'no Redis node answers yet',
      },
    };
  }
  const unzoned = shards.flatMap((shard) => shard.pods).filter((pod) => pod.zone === undefined);
  if (unzoned.length > 0) {
    for (const shard of shards) {
      const master = shard.master ?? [...shard.pods].sort(byName)[0]?.name;
      if (master !== undefined) masters.set(shard.shard, master);
    }
    return {
      masters,
      verdict: {
        status: 'Unknown',
        reason: 'ZonesUnknown',
        message: `the node of pod ${unzoned.map((pod) => pod.name).join(', ')} has no zone label`,
      },
    };
  }
  const zones = new Set(shards.flatMap((shard) => shard.pods.map((pod) => pod.zone!)));
  const options = new Map(shards.map((shard) => [shard.shard, candidates(shard)]));
  const perZone = new Map<string, number>([...zones].map((zone) => [zone, 0]));
  const zoneOf = new Map(shards.flatMap((shard) => shard.pods.map((pod) => [pod.name, pod.zone!])));
  const assign = (shard: number, pod: string, delta: number) => {
    masters.set(shard, pod);
    perZone.set(zoneOf.get(pod)!, perZone.get(zoneOf.get(pod)!)! + delta);
  };
  // Keep every current master the first rule allows; choose the others, fewest options first.
  const open: ShardPlacement[] = [];
  for (const shard of shards) {
    const allowed = options.get(shard.shard)!.pods;
    if (shard.master !== undefined && allowed.some((pod) => pod.name === shard.master))
      assign(shard.shard, shard.master, 1);
    else if (allowed.length > 0) open.push(shard);
  }
  open.sort((a, b) => options.get(a.shard)!.pods.length - options.get(b.shard)!.pods.length);
  for (const shard of open) {
    const best = [...options.get(shard.shard)!.pods].sort(
      (a, b) => perZone.get(a.zone!)! - perZone.get(b.zone!)! || byName(a, b),
    )[0]!;
    assign(shard.shard, best.name, 1);
  }
  // Second rule: move masters out of a zone holding a majority, where another zone has room.
  const limit = Math.floor(masters.size / 2);
  const ruled = zones.size >= 3 && masters.size >= 2;
  for (let round = 0; ruled && round < masters.size * zones.size; round++) {
    const crowded = [...perZone.entries()].find(([, count]) => count > limit)?.[0];
    if (crowded === undefined) break;
    let move: { shard: number; pod: ZonePod } | undefined;
    for (const [shard, pod] of masters) {
      if (zoneOf.get(pod) !== crowded) continue;
      for (const option of options.get(shard)!.pods) {
        if (perZone.get(option.zone!)! >= limit) continue;
        if (move === undefined || perZone.get(option.zone!)! < perZone.get(move.pod.zone!)!)
          move = { shard, pod: option };
      }
    }
    if (move === undefined) break;
    assign(move.shard, masters.get(move.shard)!, -1);
    assign(move.shard, move.pod.name, 1);
  }
  return { masters, verdict: verdictOf(shards, zones, options, zoneOf, ruled) };
}

/** The ZoneSpread condition for the masters as they are now. */
function verdictOf(
  shards: readonly ShardPlacement[],
  zones: Set<string>,
  options: Map<number, { pods: ZonePod[]; colocated: boolean }>,
  zoneOf: Map<string, string>,
  ruled: boolean,
): ZoneVerdict {
  const colocated = shards.filter((shard) => options.get(shard.shard)!.colocated);
  if (colocated.length > 0) {
    const first = colocated[0]!;
    return {
      status: 'False',
      reason: 'PodsColocated',
      message: `shard ${first.shard} has pods ${first.pods.map((pod) => `${pod.name} (${pod.zone})`).join(', ')}: its master cannot be kept apart from its replicas; add nodes in other zones or set topology.spread Required`,
    };
  }
  if (zones.size === 1 && shards.some((shard) => shard.pods.length > 0)) {
    return {
      status: 'False',
      reason: 'SingleZone',
      message: `every Redis pod runs in zone ${[...zones][0]}: losing it loses the cache`,
    };
  }
  for (const shard of shards) {
    if (shard.master === undefined) continue;
    const allowed = options.get(shard.shard)!.pods;
    if (!allowed.some((pod) => pod.name === shard.master)) {
      return {
        status: 'False',
        reason: 'MasterBesideReplica',
        message: `the master of shard ${shard.shard} (${shard.master}) shares zone ${zoneOf.get(shard.master)} with a replica`,
      };
    }
  }
  if (ruled) {
    const counts = new Map<string, number>();
    let total = 0;
    for (const shard of shards) {
      if (shard.master === undefined) continue;
      total++;
      const zone = zoneOf.get(shard.master)!;
      counts.set(zone, (counts.get(zone) ?? 0) + 1);
    }
    const crowded = [...counts.entries()].find(([, count]) => count > Math.floor(total / 2));
    if (crowded !== undefined) {
      return {
        status: 'False',
        reason: 'MastersConcentrated',
        message: `zone ${crowded[0]} holds ${crowded[1]} of ${total} masters: losing it would leave too few to elect replacements`,
      };
    }
  }
  return {
    status: 'True',
    reason: 'Spread',
    message: `masters and replicas spread over zones ${[...zones].sort().join(', ')}`,
  };
}
