/**
 * Moving slots with their keys between two masters, in the order that never loses a key
 * (redis-cli's own): IMPORTING on the target, MIGRATING on the source, MIGRATE the keys in
 * batches, NODE on the target (it claims the slot with a new epoch), NODE on the source,
 * NODE on every other master. Every command may be repeated, so a move interrupted at any
 * point is finished by running it again.
 *
 * Slots are opened in groups (many empty slots at once, few full ones) so that a 3 → 5
 * rebalance costs a few hundred round trips rather than tens of thousands, while a slot
 * holding blobs stays open only for its own transfer: a blob's publish script answers
 * TRYAGAIN while its slot is open.
 */
import { RedisCommandError, type RedisAdmin, type RedisEndpoint } from './admin.ts';
import { MANIFEST_KEY } from './blob-layout.ts';

export interface MoveNode extends RedisEndpoint {
  id: string;
}

export interface MoveOptions {
  /**
   * Largest MIGRATE batch in bytes (MEMORY USAGE). A batch blocks source and target for
   * its whole transfer; beyond 4-8 MiB throughput no longer grows but the pause does.
   * @default 4 MiB
   */
  batchBytes: number;
  /** MIGRATE's idle timeout (not a total). @default 10000 */
  migrateTimeoutMs: number;
  /** Keys opened at once, summed over a group of slots. @default 32 */
  keysPerGroup: number;
  /** Slots opened at once. @default 128 */
  slotsPerGroup: number;
  /** Longest wait for the target's replicas to have a batch before giving up the step. @default 10000 */
  replicaWaitMs: number;
  /** Unix ms after which no new group is started. */
  deadline: number;
  /** Told of each group of slots once it is opened and once it is closed (logs, tests). */
  onGroup?: (event: { state: 'opened' | 'closed'; slots: number[]; keys: number }) => void;
}

export const DEFAULT_MOVE_OPTIONS: Omit<MoveOptions, 'deadline' | 'onGroup'> = {
  batchBytes: 4 * 1024 * 1024,
  migrateTimeoutMs: 10_000,
  keysPerGroup: 32,
  slotsPerGroup: 128,
  replicaWaitMs: 10_000,
};

export interface MoveResult {
  slots: number;
  keys: number;
  bytes: number;
  /** Blobs dropped (Drop mode) instead of moved. */
  dropped: number;
  /** Time of the whole move. */
  ms: number;
  /** Of which spent with slots open (listing, sizing and moving their keys). */
  keysMs: number;
  /** Of which in MIGRATE and waiting for the target's replicas: bytes / transferMs is the transfer rate. */
  transferMs: number;
  /** The longest single MIGRATE: how long source and target were blocked at once. */
  longestMigrateMs: number;
}

/** A move cannot go on until someone acts (the reason is a Progressing condition reason). */
export class MoveBlockedError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MoveBlockedError';
    this.reason = reason;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Throws unless every answer is OK or an error `accept` allows. */
function check(answers: (string | null)[], node: MoveNode, what: string, accept?: RegExp): void {
  const refused = answers.find((answer) => answer !== null && !(accept?.test(answer) ?? false));
  if (refused !== undefined && refused !== null)
    throw new RedisCommandError(`${node.host}:${node.port}`, what, refused);
}

export interface MoveArgs {
  source: MoveNode;
  target: MoveNode;
  /** The other masters, told the new owner at once (gossip would tell them later). */
  others: readonly RedisEndpoint[];
  /** The target's replicas: each batch waits until they have it. */
  targetReplicas: readonly RedisEndpoint[];
  slots: readonly number[];
  /** Drop blobs S3 has instead of moving them (only done while a slot is not open yet). */
  drop: boolean;
  /** Slots already open (an interrupted move): no drop pass, straight to the keys. */
  open?: ReadonlySet<number>;
}

/**
 * Waits until every replica of `node` has processed everything the node has written so far.
 * Asked of the replicas themselves: the offsets a master reports for them come from
 * acknowledgements sent once a second, which would cap a move at one batch a second.
 */
async function replicasCaughtUp(
  admin: RedisAdmin,
  node: MoveNode,
  replicas: readonly RedisEndpoint[],
  waitMs: number,
): Promise<void> {
  if (replicas.length === 0) return;
  const goal = await admin.replicationOffset(node);
  if (goal === null) throw new Error(`${node.host}:${node.port} stopped answering mid-move`);
  const deadline = Date.now() + waitMs;
  let waiting = [...replicas];
  for (;;) {
    const offsets = await Promise.all(waiting.map((replica) => admin.replicationOffset(replica)));
    // A replica that does not answer cannot be waited for (it resyncs when it is back).
    waiting = waiting.filter((_, index) => offsets[index] !== null && offsets[index]! < goal);
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      // Not blocked for good: the step is retried (and resumed) after a back-off.
      throw new Error(
        `the replicas of ${node.host}:${node.port} did not catch up within ${waitMs} ms`,
      );
    }
    await sleep(2);
  }
}

async function migrateSlot(
  admin: RedisAdmin,
  args: MoveArgs,
  slot: number,
  options: Omit<MoveOptions, 'deadline'>,
  result: MoveResult,
): Promise<void> {
  const { source, target } = args;
  for (;;) {
    const keys = await admin.keysInSlot(source, slot, 64);
    if (keys.length === 0) return;
    const sizes = await admin.memoryUsage(source, keys);
    let batch: Buffer[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const flushStarted = Date.now();
      for (let attempt = 1; ; attempt++) {
        try {
          const started = Date.now();
          await admin.migrate(source, target, batch, {
            timeoutMs: options.migrateTimeoutMs,
            ...(target.password === undefined ? {} : { password: target.password }),
          });
          result.longestMigrateMs = Math.max(result.longestMigrateMs, Date.now() - started);
          break;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          if (/OOM/.test(message)) {
            throw new MoveBlockedError(
              'TargetOutOfMemory',
              `${target.host}:${target.port} has no room for slot ${slot}'s keys: its memory is full of blobs not yet in S3; raise redis.maxMemory or wait for S3 to take them`,
              { cause: error },
            );
          }
          // IOERR: the keys may now be on both nodes; REPLACE makes a retry safe.
          if (!/IOERR/.test(message) || attempt >= 3) throw error;
        }
      }
      result.keys += batch.length;
      result.bytes += bytes;
      await replicasCaughtUp(admin, target, args.targetReplicas, options.replicaWaitMs);
      result.transferMs += Date.now() - flushStarted;
      batch = [];
      bytes = 0;
    };
    for (const [index, key] of keys.entries()) {
      const size = sizes[index] ?? 0;
      if (batch.length > 0 && bytes + size > options.batchBytes) await flush();
      batch.push(key);
      bytes += size;
    }
    await flush();
  }
}

/** Drops the blobs of a slot that S3 has (the slot must not be open). */
async function dropCached(
  admin: RedisAdmin,
  source: MoveNode,
  slot: number,
  count: number,
): Promise<number> {
  let dropped = 0;
  const keys = await admin.keysInSlot(source, slot, count);
  for (const key of keys) {
    if (!MANIFEST_KEY.test(key.toString('latin1'))) continue;
    if (await admin.dropCachedBlob(source, key)) dropped++;
  }
  return dropped;
}

/** The next group of slots: up to `slotsPerGroup`, holding up to `keysPerGroup` keys. */
async function nextGroup(
  admin: RedisAdmin,
  source: MoveNode,
  slots: readonly number[],
  options: Omit<MoveOptions, 'deadline'>,
): Promise<{ slots: number[]; counts: number[] }> {
  const window = slots.slice(0, options.slotsPerGroup);
  const counts = await admin.countKeysInSlots(source, window);
  let keys = 0;
  let size = 0;
  while (size < window.length && (size === 0 || keys + counts[size]! <= options.keysPerGroup)) {
    keys += counts[size]!;
    size++;
  }
  return { slots: window.slice(0, size), counts: counts.slice(0, size) };
}

/**
 * Moves `args.slots` from source to target, group by group, until done or past the
 * deadline (a group once opened is always finished). Answers what was moved.
 */
export async function moveSlots(
  admin: RedisAdmin,
  args: MoveArgs,
  options: MoveOptions,
): Promise<MoveResult> {
  const started = Date.now();
  const result: MoveResult = {
    slots: 0,
    keys: 0,
    bytes: 0,
    dropped: 0,
    ms: 0,
    keysMs: 0,
    transferMs: 0,
    longestMigrateMs: 0,
  };
  const { source, target } = args;
  let remaining = [...args.slots];
  while (remaining.length > 0 && (result.slots === 0 || Date.now() < options.deadline)) {
    const group = await nextGroup(admin, source, remaining, options);
    remaining = remaining.slice(group.slots.length);
    if (args.drop) {
      for (const [index, slot] of group.slots.entries()) {
        if (group.counts[index]! > 0 && args.open?.has(slot) !== true)
          result.dropped += await dropCached(admin, source, slot, group.counts[index]!);
      }
    }
    const owned = await admin.setSlots(target, group.slots, 'IMPORTING', source.id);
    // A slot the target already owns was moved before an interruption; only NODE is left.
    const moving = group.slots.filter((_, index) => !/already the owner/.test(owned[index] ?? ''));
    check(owned, target, 'CLUSTER SETSLOT IMPORTING', /already the owner/);
    check(
      await admin.setSlots(source, moving, 'MIGRATING', target.id),
      source,
      'CLUSTER SETSLOT MIGRATING',
    );
    const keys = group.counts.reduce((sum, count) => sum + count, 0);
    options.onGroup?.({ state: 'opened', slots: group.slots, keys });
    const transfer = Date.now();
    for (const slot of moving) await migrateSlot(admin, args, slot, options, result);
    result.keysMs += Date.now() - transfer;
    check(
      await admin.setSlots(target, group.slots, 'NODE', target.id),
      target,
      'CLUSTER SETSLOT NODE',
    );
    check(
      await admin.setSlots(source, group.slots, 'NODE', target.id),
      source,
      'CLUSTER SETSLOT NODE',
    );
    // The others learn it by gossip anyway; telling them now spares clients a redirection.
    await Promise.allSettled(
      args.others.map((node) => admin.setSlots(node, group.slots, 'NODE', target.id)),
    );
    result.slots += group.slots.length;
    options.onGroup?.({ state: 'closed', slots: group.slots, keys });
  }
  result.ms = Date.now() - started;
  return result;
}
