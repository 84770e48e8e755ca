import type { PhaseResult, ReconcileContext } from '../context.ts';

/**
 * One step of a reconcile. Phases run in order; each returns when it wants to run again
 * (results combine with the earliest requeue) or throws: a TerminalError for a spec that
 * can never work, anything else to retry with back-off.
 */
export interface Phase {
  readonly name: string;
  run(ctx: ReconcileContext): Promise<PhaseResult>;
}
