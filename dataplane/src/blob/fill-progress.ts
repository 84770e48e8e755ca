import type { ReadAheadBudget } from '../redis/chunks.ts';

/** A chunk kept in memory for readers: in the fill's window, or still pinned by a reader. */
interface Held {
  data: Buffer;
  pins: number;
  inWindow: boolean;
}

interface Waiter {
  index: number;
  /** Also woken when chunk `index` has more than this many bytes received. */
  beyond: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A chunk the fill is writing or has sent to Redis, not yet readable as a whole. */
interface Received {
  data: Buffer;
  length: number;
}

export interface FillShape {
  key: string;
  size: number;
  chunkBytes: number;
  /** Where the fill stages its chunks in Redis (`bc:{K}:c:<uploadId>:<i>`). */
  uploadId: string;
  sha256?: string;
}

export interface FillProgressOptions extends FillShape {
  /** Shared with every Redis read of the process (docs/decisions/0018). */
  budget: ReadAheadBudget;
  /** Most recent chunks kept in memory while readers are attached. @default 8 */
  windowChunks?: number;
}

/**
 * What the readers of one fill share inside a process: which chunks they may read (staged
 * in Redis), the most recent ones in memory, and how the fill ended. The fill (or a process
 * following a fill elsewhere) reports chunks as Redis acknowledges them and never waits
 * for readers: a reader that falls out of the window reads Redis instead.
 *
 * The process running the fill also reports the bytes of each chunk as they pass its
 * verifier (`received`), before Redis has the chunk: its own readers stream them at once,
 * so a reader's first byte follows the durable tier's (docs/decisions/0097).
 *
 * The last chunk becomes readable only when the fill `finish`es, that is once the bytes
 * matched the key and the fill published them; readers hold back their last piece until
 * then (`settled`): nobody holds a whole blob before it was verified, and whoever got it
 * whole finds it cached.
 *
 * Memory: at most `windowChunks` chunks, plus the chunks readers pinned, all taken from
 * the read-ahead budget (a chunk that does not fit is simply not kept).
 */
export class FillProgress implements FillShape {
  readonly key: string;
  readonly size: number;
  readonly chunkBytes: number;
  readonly uploadId: string;
  readonly sha256?: string;
  readonly chunkCount: number;
  /** Resolves when the fill finished, rejects when it failed (never unhandled). */
  readonly settled: Promise<void>;
  private readonly budget: ReadAheadBudget;
  private readonly windowChunks: number;
  private readonly held = new Map<number, Held>();
  /** Chunks whose bytes passed the fill's verifier in this process, until readable whole. */
  private readonly receiving = new Map<number, Received>();
  private readonly window: number[] = [];
  private waiters: Waiter[] = [];
  private storedCount = 0;
  private readable = 0;
  private readers = 0;
  private failure: Error | undefined;
  private finished = false;
  private settle!: { resolve: () => void; reject: (error: Error) => void };

  constructor(options: FillProgressOptions) {
    this.key = options.key;
    this.size = options.size;
    this.chunkBytes = options.chunkBytes;
    this.uploadId = options.uploadId;
    if (options.sha256 !== undefined) this.sha256 = options.sha256;
    this.chunkCount = Math.ceil(options.size / options.chunkBytes);
    this.budget = options.budget;
    this.windowChunks = options.windowChunks ?? 8;
    this.settled = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.settled.catch(() => undefined);
  }

  get ended(): boolean {
    return this.finished || this.failure !== undefined;
  }

  /** A reader joins; call the returned function when it is done. */
  attach(): () => void {
    this.readers += 1;
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.readers -= 1;
      if (this.readers === 0) this.clearWindow();
    };
  }

  /** True when a reader waits for chunk `index` (worth fetching it into memory). */
  awaited(index: number): boolean {
    return this.waiters.some((waiter) => waiter.index === index);
  }

  /** Chunk `index` is in Redis (reported in order); `data` when the caller has its bytes. */
  stored(index: number, data?: Buffer): void {
    if (this.ended || index !== this.storedCount) return;
    this.storedCount = index + 1;
    if (data !== undefined && this.readers > 0 && this.budget.tryTake(data.length)) {
      this.held.set(index, { data, pins: 0, inWindow: true });
      this.window.push(index);
      while (this.window.length > this.windowChunks) this.leaveWindow(this.window.shift()!);
    }
    // The last chunk waits for `finish`: see the class comment.
    this.advance(Math.min(this.storedCount, this.chunkCount - 1));
  }

  /**
   * The first `length` bytes of chunk `index` passed the fill's verifier in this process
   * (`data` is the writer's buffer: bytes below `length` never change). Reported only by
   * the process running the fill, in order, as they come.
   */
  received(index: number, data: Buffer, length: number): void {
    if (this.ended || index < this.readable) return;
    this.receiving.set(index, { data, length });
    // Called for every piece a fill writes: no work when nobody waits.
    if (this.waiters.length === 0) return;
    const woken = this.waiters.filter((waiter) => waiter.index === index && length > waiter.beyond);
    if (woken.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => !woken.includes(waiter));
    for (const waiter of woken) waiter.resolve();
  }

  /**
   * The bytes of chunk `index` from `offset` on that were received but are not readable as
   * a chunk yet; undefined when there are none beyond `offset`.
   */
  receivedBytes(index: number, offset: number): Buffer | undefined {
    const entry = this.receiving.get(index);
    if (entry === undefined || index < this.readable || offset >= entry.length) return undefined;
    return entry.data.subarray(offset, entry.length);
  }

  /** Every chunk is staged and verified, and the fill published (or was refused). */
  finish(): void {
    if (this.ended) return;
    this.finished = true;
    this.advance(this.chunkCount);
    this.settle.resolve();
    if (this.readers === 0) this.clearWindow();
  }

  fail(error: Error): void {
    if (this.ended) return;
    this.failure = error;
    this.receiving.clear();
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters = [];
    this.settle.reject(error);
    this.clearWindow();
  }

  /**
   * Resolves once chunk `index` may be read, or once more than `offset` of its bytes were
   * received (see `receivedBytes`); rejects if the fill fails first.
   */
  waitForBytes(index: number, offset: number): Promise<void> {
    if (index < this.readable || this.receivedBytes(index, offset) !== undefined)
      return Promise.resolve();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) =>
      this.waiters.push({ index, beyond: offset, resolve, reject }),
    );
  }

  /** Chunks `0..n-1` may be read now. */
  get readableChunks(): number {
    return this.readable;
  }

  /** The first chunk index still in memory (readers behind it read Redis). */
  get windowStart(): number {
    return this.window[0] ?? this.storedCount;
  }

  /** Chunk `index` from memory, pinned until `release(index)`; undefined when not there. */
  take(index: number): Buffer | undefined {
    const entry = this.held.get(index);
    if (entry === undefined || index >= this.readable) return undefined;
    entry.pins += 1;
    return entry.data;
  }

  release(index: number): void {
    const entry = this.held.get(index);
    if (entry === undefined) return;
    entry.pins -= 1;
    this.forgetIfUnused(index, entry);
  }

  private advance(readable: number): void {
    if (readable <= this.readable) return;
    this.readable = readable;
    for (const index of this.receiving.keys()) if (index < readable) this.receiving.delete(index);
    const ready = this.waiters.filter((waiter) => waiter.index < readable);
    this.waiters = this.waiters.filter((waiter) => waiter.index >= readable);
    for (const waiter of ready) waiter.resolve();
  }

  private leaveWindow(index: number): void {
    const entry = this.held.get(index);
    if (entry === undefined) return;
    entry.inWindow = false;
    this.forgetIfUnused(index, entry);
  }

  private forgetIfUnused(index: number, entry: Held): void {
    if (entry.pins > 0 || entry.inWindow) return;
    this.held.delete(index);
    this.budget.give(entry.data.length);
  }

  private clearWindow(): void {
    for (const index of this.window.splice(0)) this.leaveWindow(index);
  }
}
