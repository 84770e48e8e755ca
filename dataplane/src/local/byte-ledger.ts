/**
 * The bookkeeping of a bounded tier whose entries are files: which keys it holds, in
 * least-recently-used order, and how many bytes they take, against a bound. No I/O: the
 * tier removes a file when `onEvict` tells it to.
 *
 * Bytes are counted from the moment a fill reserves them until they are free on disk
 * again: an entry removed (evicted, deleted, quarantined) while readers hold its file open
 * keeps counting until the last reader lets go, because an unlinked file that is still
 * open still takes its space. Eviction skips entries being read for the same reason.
 */
export class ByteLedger<T> {
  private readonly entries = new Map<string, Slot<T>>();
  private bytes = 0;
  private evicted = 0;
  private readonly maxBytes: number;
  private readonly onEvict: (key: string, value: T) => void;

  constructor(options: { maxBytes: number; onEvict: (key: string, value: T) => void }) {
    this.maxBytes = options.maxBytes;
    this.onEvict = options.onEvict;
  }

  /** Bytes counted (entries, files removed but still open, reservations), entries, evictions. */
  stats(): { bytes: number; entries: number; evictions: number } {
    return { bytes: this.bytes, entries: this.entries.size, evictions: this.evicted };
  }

  /**
   * Counts `bytes` more, evicting least recently used entries nobody reads to make room;
   * false (and nothing counted or evicted) when even that would not make room.
   */
  reserve(bytes: number): boolean {
    if (bytes > this.maxBytes) return false;
    let freeable = 0;
    for (const slot of this.entries.values()) if (slot.readers === 0) freeable += slot.size;
    if (this.bytes - freeable + bytes > this.maxBytes) return false;
    this.bytes += bytes;
    for (const [key, slot] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (slot.readers > 0) continue;
      this.evicted += 1;
      this.drop(key, slot);
      this.onEvict(key, slot.value);
    }
    return true;
  }

  /** Gives back bytes reserved by a fill that will not become an entry. */
  unreserve(bytes: number): void {
    this.bytes -= bytes;
  }

  /** Turns `size` reserved bytes into the entry `key` (most recently used). */
  add(key: string, size: number, value: T): void {
    const existing = this.entries.get(key);
    if (existing !== undefined) this.drop(key, existing);
    this.entries.set(key, { size, value, readers: 0, gone: false });
  }

  /** The entry, made the most recently used. */
  get(key: string): T | undefined {
    const slot = this.entries.get(key);
    if (slot === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, slot);
    return slot.value;
  }

  /** The entry, leaving the order alone. */
  peek(key: string): T | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /**
   * Marks the entry as being read: it is not evicted, and once removed its bytes count
   * until the returned function is called (safe to call more than once).
   */
  pin(key: string): (() => void) | undefined {
    const slot = this.entries.get(key);
    if (slot === undefined) return undefined;
    slot.readers += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.readers -= 1;
      if (slot.readers === 0 && slot.gone) this.bytes -= slot.size;
    };
  }

  /** Removes the entry (a DELETE, a damaged file); its value, for the caller to clean up. */
  remove(key: string): T | undefined {
    const slot = this.entries.get(key);
    if (slot === undefined) return undefined;
    this.drop(key, slot);
    return slot.value;
  }

  /** Every key held, least recently used first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  private drop(key: string, slot: Slot<T>): void {
    this.entries.delete(key);
    slot.gone = true;
    if (slot.readers === 0) this.bytes -= slot.size;
  }
}

interface Slot<T> {
  size: number;
  value: T;
  readers: number;
  gone: boolean;
}
