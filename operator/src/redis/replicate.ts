/**
 * Attaching replicas: every pod of a shard that is not its master replicates the shard's
 * master. Pure. The rule never takes a copy of data away: a replica that follows a master
 * which serves slots (or did, and failed) keeps it until that master's shard has another
 * copy, so a shard whose master is down waits for its replica's promotion rather than
 * having that replica attached to an empty node.
 */
import { isMasterMember, linkedReplicas, servingMaster, shardMembers } from './facts.ts';
import { slotOwners, type ClusterModel, type Member } from './model.ts';
import type { Step } from './steps.ts';
import type { ZonePlan } from './zones.ts';

type Outcome = { step: Step | null; waiting: string | null };

const follows = (member: Member, master: Member) =>
  member.inspection.role === 'replica' && member.self.masterId === master.id;

export function replicateStep(model: ClusterModel, zones: ZonePlan): Outcome {
  const owners = new Set(slotOwners(model).filter((id): id is string => id !== null));
  const links: { member: Member; master: Member }[] = [];
  const shards = new Set(model.members.map((member) => member.pod.shard));
  for (const shard of [...shards].sort((a, b) => a - b)) {
    const members = shardMembers(model, shard).filter((member) => !member.pod.terminating);
    let master = servingMaster(model, shard);
    if (master === undefined) {
      // A replica here copies a master that serves (or served) slots: the shard's master is
      // down, and its replica is about to take over. Wait for that.
      if (members.some((member) => owners.has(member.self.masterId ?? ''))) continue;
      master =
        members.find(
          (member) => member.pod.name === zones.masters.get(shard) && isMasterMember(member),
        ) ?? members.filter(isMasterMember).sort((a, b) => a.pod.ordinal - b.pod.ordinal)[0];
    }
    if (master === undefined) continue;
    for (const member of members) {
      if (member === master || member.slots > 0 || follows(member, master)) continue;
      const current =
        member.self.masterId === null ? undefined : model.byId.get(member.self.masterId);
      if (owners.has(member.self.masterId ?? '')) {
        // It copies another shard's master: move it only if that master keeps a copy.
        if (current === undefined || linkedReplicas(model, current).length < 2) continue;
      }
      // REPLICATE needs the master known as a master in the replica's own view.
      const seen = member.inspection.nodes.find((node) => node.id === master.id);
      if (seen === undefined || !seen.flags.includes('master')) {
        return {
          step: null,
          waiting: `waiting for ${member.pod.name} to learn ${master.pod.name}`,
        };
      }
      links.push({ member, master });
    }
  }
  return { step: links.length > 0 ? { kind: 'Replicate', links } : null, waiting: null };
}
