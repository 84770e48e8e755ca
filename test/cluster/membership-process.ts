/**
 * The operator's membership loop as a process of its own, for the test that kills it with
 * SIGKILL mid-migration: reconcileMembership over the ioredis RedisAdmin, the pods from a
 * JSON file, status.operation kept in a file between rounds (written after every round, as
 * the operator writes the BlobCache status), one JSON line per round and per slot group on
 * stdout. Exits 0 once membership has nothing left to do.
 *
 *   node test/cluster/membership-process.ts <config.json>
 *   config: { spec, pods, password, nodeTimeoutMs, statusFile }
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { RecordedOperation } from '../../operator/src/redis/membership.ts';
import type { MembershipSpec, RedisPod } from '../../operator/src/redis/model.ts';
import { TestOperator } from './test-operator.ts';

interface Config {
  spec: MembershipSpec;
  pods: RedisPod[];
  password: string;
  nodeTimeoutMs: number;
  statusFile: string;
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Config;
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const operator = new TestOperator(
  { records: () => config.pods, password: config.password, nodeTimeoutMs: config.nodeTimeoutMs },
  config.spec,
  {
    move: {
      onGroup: (event) => say({ group: event.state, slots: event.slots.length, keys: event.keys }),
    },
  },
);
if (existsSync(config.statusFile)) {
  const recorded = JSON.parse(readFileSync(config.statusFile, 'utf8')) as RecordedOperation | null;
  if (recorded !== null) operator.recorded = recorded;
  say({ resumed: recorded });
}
const save = () => {
  writeFileSync(`${config.statusFile}.new`, JSON.stringify(operator.recorded ?? null));
  renameSync(`${config.statusFile}.new`, config.statusFile);
};
for (;;) {
  const outcome = await operator.round();
  save();
  say({
    operation: outcome.operation?.type ?? null,
    step: outcome.executed?.kind ?? null,
    waiting: outcome.plan.waiting,
    error: outcome.error?.message ?? null,
  });
  if (
    outcome.operation === undefined &&
    outcome.executed === undefined &&
    outcome.error === undefined
  )
    break;
  await new Promise((resolve) =>
    setTimeout(resolve, outcome.error !== undefined ? 500 : outcome.requeueAfterMs),
  );
}
await operator.close();
