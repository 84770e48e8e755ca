/**
 * Group commit: callers that need the same costly confirmation (a directory fsync, a Redis
 * `WAIT`) share one. Per group, at most one batch runs; items submitted while it runs
 * form the next batch, started when it ends. So an item never joins a batch that already
 * started: whatever the item did before `submit` happened before its batch began, which
 * is what an fsync or a `WAIT` needs to cover it. An idle group starts a batch at once
 * (no added latency for a lone caller).
 */
export interface GroupCommitOptions<Item, Result> {
  /**
   * Runs one batch; resolves to one result per item, in order (or rejects: every item of
   * the batch then fails with that error).
   */
  run: (group: string, items: readonly Item[]) => Promise<readonly Result[]>;
  /** Items per batch at most; the rest wait for the next. @default 256 */
  maxBatch?: number;
}

interface Waiter<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export class GroupCommit<Item, Result> {
  private readonly run: GroupCommitOptions<Item, Result>['run'];
  private readonly maxBatch: number;
  /** Groups with a batch running, and the items waiting for the next one. */
  private readonly queued = new Map<string, Waiter<Item, Result>[]>();

  constructor(options: GroupCommitOptions<Item, Result>) {
    this.run = options.run;
    this.maxBatch = options.maxBatch ?? 256;
  }

  submit(group: string, item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const waiter = { item, resolve, reject };
      const waiting = this.queued.get(group);
      if (waiting !== undefined) {
        waiting.push(waiter);
        return;
      }
      this.queued.set(group, []);
      void this.runBatch(group, [waiter]);
    });
  }

  /** Batches that ran (for tests and metrics). */
  batches = 0;

  private async runBatch(group: string, batch: Waiter<Item, Result>[]): Promise<void> {
    this.batches++;
    try {
      const results = await this.run(
        group,
        batch.map((waiter) => waiter.item),
      );
      if (results.length !== batch.length) {
        throw new Error(`A batch of ${batch.length} answered ${results.length} results`);
      }
      batch.forEach((waiter, index) => waiter.resolve(results[index] as Result));
    } catch (error) {
      for (const waiter of batch) waiter.reject(error);
    }
    const waiting = this.queued.get(group) ?? [];
    if (waiting.length === 0) {
      this.queued.delete(group);
      return;
    }
    const next = waiting.splice(0, this.maxBatch);
    void this.runBatch(group, next);
  }
}
