/** One operation's view of deletes that happened to its key while it ran. */
export interface KeyGuard {
  /** True once a DELETE of the key arrived after this operation started. */
  readonly deleted: boolean;
  leave(): void;
}

/**
 * In-process tombstones: fills and uploads enter a guard for their key, and a DELETE marks
 * every guard of that key, so an operation that started before the DELETE removes what it
 * published instead of resurrecting the blob. Only keys with operations under way are held.
 */
export class KeyGuards {
  private readonly active = new Map<string, Set<{ deleted: boolean }>>();

  enter(key: string): KeyGuard {
    const state = { deleted: false };
    let set = this.active.get(key);
    if (set === undefined) {
      set = new Set();
      this.active.set(key, set);
    }
    set.add(state);
    const active = this.active;
    return {
      get deleted() {
        return state.deleted;
      },
      leave() {
        const current = active.get(key);
        current?.delete(state);
        if (current?.size === 0) active.delete(key);
      },
    };
  }

  markDeleted(key: string): void {
    for (const state of this.active.get(key) ?? []) state.deleted = true;
  }
}
