/** One operation's view of deletes that happened to its key while it ran. */
export interface KeyGuard {
  /** True once a DELETE of the key arrived after this operation started. */
  readonly deleted: boolean;
  /**
   * Aborted when a DELETE of the key arrives: pass it to a put whose result must not
   * outlive the DELETE (an in-process copy made by a read that started before it).
   */
  readonly signal: AbortSignal;
  leave(): void;
}

interface GuardState {
  deleted: boolean;
  controller?: AbortController;
}

/**
 * In-process tombstones: fills, uploads and reads enter a guard for their key, and a DELETE
 * marks every guard of that key, so an operation that started before the DELETE removes
 * (or never makes) what it would publish instead of resurrecting the blob. Only keys with
 * operations under way are held.
 */
export class KeyGuards {
  private readonly active = new Map<string, Set<GuardState>>();

  enter(key: string): KeyGuard {
    const state: GuardState = { deleted: false };
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
      get signal() {
        // Made on first use: most guarded operations never need one.
        state.controller ??= new AbortController();
        if (state.deleted) state.controller.abort(deletedError(key));
        return state.controller.signal;
      },
      leave() {
        const current = active.get(key);
        current?.delete(state);
        if (current?.size === 0) active.delete(key);
      },
    };
  }

  markDeleted(key: string): void {
    for (const state of this.active.get(key) ?? []) {
      state.deleted = true;
      state.controller?.abort(deletedError(key));
    }
  }
}

function deletedError(key: string): Error {
  return new Error(`Blob ${key} was deleted meanwhile`);
}
