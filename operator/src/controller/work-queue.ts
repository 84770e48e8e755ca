/**
 * A keyed, de-duplicating work queue with per-key rate-limited retries (like client-go's
 * workqueue): a key is never processed by two workers at once, a key added while it is
 * being processed is processed again afterwards, and failures back off exponentially.
 */
export interface WorkQueueOptions {
  /** @default 1000 */
  baseDelayMs?: number;
  /** @default 300000 */
  maxDelayMs?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; dueAt: number }>();
  private readonly waiters: (() => void)[] = [];
  private readonly options: Required<WorkQueueOptions>;
  private closed = false;

  constructor(options: WorkQueueOptions = {}) {
    this.options = { baseDelayMs: 1_000, maxDelayMs: 300_000, ...options };
  }

  add(key: string): void {
    if (this.closed) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.waiters.shift()?.();
  }

  /**
   * Adds the key after `delayMs`. A key already waiting keeps whichever deadline comes
   * first (a failure's short back-off must not be lost behind a long periodic requeue).
   * Returns how long until the key really comes back.
   */
  addAfter(key: string, delayMs: number): number {
    if (this.closed) return delayMs;
    const dueAt = performance.now() + delayMs;
    const waiting = this.timers.get(key);
    if (waiting !== undefined) {
      if (waiting.dueAt <= dueAt) return Math.max(0, waiting.dueAt - performance.now());
      clearTimeout(waiting.timer);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    this.timers.set(key, { timer, dueAt });
    return delayMs;
  }

  /**
   * Re-adds a key after its next back-off delay (1 s, 2 s, 4 s, ... up to the maximum), or
   * sooner if it was already due back sooner. Returns the real delay.
   */
  addRateLimited(key: string): number {
    const failures = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, failures);
    const delay = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (failures - 1));
    return this.addAfter(key, delay);
  }

  /** Forgets a key entirely (its object is gone): back-off and any timer. */
  drop(key: string): void {
    this.failures.delete(key);
    const waiting = this.timers.get(key);
    if (waiting !== undefined) clearTimeout(waiting.timer);
    this.timers.delete(key);
  }

  /** Clears a key's back-off after it succeeded. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  get length(): number {
    return this.queue.length;
  }

  /** Milliseconds until a key waiting on a timer comes back, or undefined if none is armed. */
  dueIn(key: string): number | undefined {
    const waiting = this.timers.get(key);
    return waiting === undefined ? undefined : Math.max(0, waiting.dueAt - performance.now());
  }

  /** Keys waiting to be processed or being processed now (not those waiting on a timer). */
  get pending(): number {
    return this.queue.length + this.active.size;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  async next(): Promise<string | undefined> {
    while (this.queue.length === 0) {
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const key = this.queue.shift()!;
    this.queued.delete(key);
    this.active.add(key);
    return key;
  }

  /** Marks a key processed; if it was added meanwhile it goes back in the queue. */
  done(key: string): void {
    this.active.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  shutdown(): void {
    this.closed = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const wake of this.waiters.splice(0)) wake();
  }
}
