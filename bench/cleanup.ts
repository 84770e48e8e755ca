/**
 * What the benchmark must undo however it ends. Whatever starts a process, a namespace or
 * a folder registers how to undo it; the run undoes everything left, newest first, in its
 * `finally` and on SIGINT, SIGTERM or SIGHUP (where no `finally` would run).
 */
const pending: (() => Promise<unknown>)[] = [];

/** Registers `undo`; the returned function runs it now (once) and forgets it. */
export function mustUndo(undo: () => Promise<unknown>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> =>
    (done ??= undo().then(
      () => undefined,
      () => undefined,
    ));
  pending.push(once);
  return async () => {
    const index = pending.indexOf(once);
    if (index >= 0) pending.splice(index, 1);
    await once();
  };
}

export async function undoAll(): Promise<void> {
  for (const undo of pending.splice(0).reverse()) await undo();
}

/** Undoes everything, then exits, when the run is interrupted. */
export function undoOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(signal, () => {
      process.stderr.write(`[bench] ${signal}: undoing what the run made\n`);
      void undoAll().finally(() => process.exit(130));
    });
}
