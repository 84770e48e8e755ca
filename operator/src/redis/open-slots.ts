/**
 * Slots left open (MIGRATING/IMPORTING) by a move that was interrupted: by an operator
 * restart, a crash, or a failover of one of the two nodes. They are finished forward, in
 * the direction the markers say, never "fixed" by counting keys the way
 * `redis-cli --cluster fix` does (which may move a slot back). Pure.
 */
import type { ClusterModel, Member, RedisPod } from './model.ts';

export interface ResumeMove {
  source: Member;
  target: Member;
  slots: number[];
  /**
   * Slots the target no longer sees as owned by anyone (its source failed over while the
   * slot was open): the target is first told the current owner.
   */
  restoreOwner: number[];
}

export interface OpenSlotPlan {
  resume: ResumeMove[];
  /** Slots whose move has nowhere to go: the named node's markers are cleared (STABLE). */
  close: { member: Member; slots: number[] }[];
  /** Slots a target took over while its source no longer claims them: the target claims them. */
  claim: { member: Member; slots: number[] }[];
  /** Why nothing can be done yet (a node involved does not answer). */
  waiting: string[];
}

const isMaster = (member: Member) => member.self.flags.includes('master');

function ownsInOwnView(member: Member, slot: number): boolean {
  return member.self.slots.some(([first, last]) => slot >= first && slot <= last);
}

/** The master serving a shard now, among the members. */
function shardMaster(model: ClusterModel, shard: number): Member | undefined {
  return model.members.find(
    (member) => member.pod.shard === shard && isMaster(member) && member.slots > 0,
  );
}

/** The owner of a slot by the majority of the members' views (null: nobody). */
function viewOwner(model: ClusterModel, slot: number): string | null {
  const votes = new Map<string, number>();
  for (const member of model.members) {
    for (const node of member.inspection.nodes) {
      if (node.slots.some(([first, last]) => slot >= first && slot <= last))
        votes.set(node.id, (votes.get(node.id) ?? 0) + 1);
    }
  }
  return [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
}

/** The pod a node id belongs or belonged to, by the address the members know it at. */
export function podOfNode(model: ClusterModel, id: string): RedisPod | undefined {
  const member = model.byId.get(id);
  if (member !== undefined) return member.pod;
  for (const viewer of model.members) {
    const line = viewer.inspection.nodes.find((node) => node.id === id);
    if (line === undefined) continue;
    const pod = model.reports
      .map((report) => report.pod)
      .find((candidate) => `${candidate.ip}:${candidate.port}` === line.address);
    if (pod !== undefined) return pod;
  }
  return undefined;
}

/** True when the members agree a node has failed (flag `fail`, not just suspected). */
function failed(model: ClusterModel, id: string): boolean {
  return model.members.some((member) =>
    member.inspection.nodes.some((node) => node.id === id && node.flags.includes('fail')),
  );
}

export function planOpenSlots(model: ClusterModel): OpenSlotPlan {
  const plan: OpenSlotPlan = { resume: [], close: [], claim: [], waiting: [] };
  const masters = model.members.filter(isMaster);
  const slots = new Set<number>();
  for (const member of masters) {
    for (const { slot } of member.self.migrating) slots.add(slot);
    for (const { slot } of member.self.importing) slots.add(slot);
  }
  const resume = new Map<string, ResumeMove>();
  const add = (list: { member: Member; slots: number[] }[], member: Member, slot: number) => {
    const entry = list.find((item) => item.member === member);
    if (entry === undefined) list.push({ member, slots: [slot] });
    else entry.slots.push(slot);
  };
  for (const slot of [...slots].sort((a, b) => a - b)) {
    const owner = masters.find((member) => ownsInOwnView(member, slot));
    const marker = owner?.self.migrating.find((entry) => entry.slot === slot);
    const importers = masters.filter((member) =>
      member.self.importing.some((entry) => entry.slot === slot),
    );
    let target =
      importers.find((member) => member.id === marker?.to) ??
      importers.find((member) => member !== owner);
    if (owner === undefined) {
      // Nobody serves the slot in its own view: the source handed it over (its keys are
      // gone, or it could not have) but the target never claimed it. Unless the node the
      // others take for its owner merely does not answer.
      const said = viewOwner(model, slot);
      if (said !== null && !model.byId.has(said) && !failed(model, said)) {
        plan.waiting.push(`slot ${slot} is open and its owner ${said} does not answer`);
        continue;
      }
      if (target !== undefined) add(plan.claim, target, slot);
      for (const member of masters.filter((m) => m !== target && m.self.migrating.length > 0))
        if (member.self.migrating.some((entry) => entry.slot === slot))
          add(plan.close, member, slot);
      continue;
    }
    // Another master still migrating a slot the owner serves handed it over already: the
    // move ended on the target (SETSLOT NODE) before the source was told (an operator
    // killed in between). Its marker is stale; nothing is left to move.
    for (const stale of masters.filter((member) => member !== owner))
      if (stale.self.migrating.some((entry) => entry.slot === slot)) add(plan.close, stale, slot);
    if (target === undefined && marker !== undefined) {
      // The source still migrates to a node that is not importing: the target restarted
      // or failed over. Forward to its shard's current master when there is one.
      const named = model.byId.get(marker.to);
      if (named === undefined && !failed(model, marker.to)) {
        plan.waiting.push(`slot ${slot} is open towards ${marker.to}, which does not answer`);
        continue;
      }
      target = named !== undefined && isMaster(named) ? named : undefined;
      const shard = named?.pod.shard ?? podOfNode(model, marker.to)?.shard;
      if (target === undefined && shard !== undefined) target = shardMaster(model, shard);
      if (target === owner) target = undefined;
    }
    if (target === undefined) {
      if (marker !== undefined || importers.includes(owner)) add(plan.close, owner, slot);
      continue;
    }
    for (const other of importers.filter((member) => member !== target))
      add(plan.close, other, slot);
    const key = `${owner.id}>${target.id}`;
    const move = resume.get(key) ?? { source: owner, target, slots: [], restoreOwner: [] };
    move.slots.push(slot);
    const seen = target.inspection.nodes.some((node) =>
      node.slots.some(([first, last]) => slot >= first && slot <= last),
    );
    if (!seen) move.restoreOwner.push(slot);
    resume.set(key, move);
  }
  plan.resume = [...resume.values()];
  return plan;
}

/** True when some slot is open anywhere. */
export function hasOpenSlots(plan: OpenSlotPlan): boolean {
  return plan.resume.length + plan.close.length + plan.claim.length > 0;
}
