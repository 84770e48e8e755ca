import type { KubeClient } from './client.ts';

/** A write was refused because this instance may no longer be the leader. */
export class LeadershipLostError extends Error {
  constructor() {
    super('Not the leader any more: the write was not sent');
    this.name = 'LeadershipLostError';
  }
}

/**
 * A KubeClient that refuses every write once `isLeader()` says no. The check is made at
 * the moment of each write, so a reconcile that was under way when leadership ran out
 * cannot change anything after another instance may have taken over.
 */
export function fenced(kube: KubeClient, isLeader: () => boolean): KubeClient {
  const check = (): void => {
    if (!isLeader()) throw new LeadershipLostError();
  };
  return {
    get: (ref) => kube.get(ref),
    list: (type, namespace, labels) => kube.list(type, namespace, labels),
    async apply(object) {
      check();
      return kube.apply(object);
    },
    async createIfAbsent(object) {
      check();
      return kube.createIfAbsent(object);
    },
    async delete(ref, options) {
      check();
      return kube.delete(ref, options);
    },
    async patchStatus(ref, status) {
      check();
      return kube.patchStatus(ref, status);
    },
    async recordEvent(object, event) {
      check();
      return kube.recordEvent(object, event);
    },
  };
}
