import type { Cluster } from 'ioredis';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisClusterHandle } from './services.ts';

/** Reads one unlabelled metric from a data plane's /metrics. */
export async function metricValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((candidate) => candidate.startsWith(`${name} `) || candidate.startsWith(`${name}{`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** Sums a metric over all its label sets matching `labels` (e.g. `result="corrupt"`). */
export async function metricSum(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) && line.includes(labels))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

/** `metricSum` over several data planes. */
export async function metricSumOver(
  urls: readonly string[],
  name: string,
  labels = '',
): Promise<number> {
  const sums = await Promise.all(urls.map((url) => metricSum(url, name, labels)));
  return sums.reduce((total, value) => total + value, 0);
}

/** Waits until the write-behind journal is empty: every acknowledged blob is in S3. */
export async function waitForDrain(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await metricValue(url, 'blobcache_journal_backlog')) !== 0) {
    if (Date.now() > deadline) throw new Error('The journal did not drain in time');
    await sleep(200);
  }
}

/** Empties every master (what a cold start looks like to the data plane). */
export function flushRedis(redis: RedisClusterHandle): void {
  for (const port of redis.masters()) {
    const result = spawnSync('redis-cli', ['-p', String(port), 'FLUSHALL'], { encoding: 'utf8' });
    if (!result.stdout.includes('OK'))
      throw new Error(`FLUSHALL on ${port} said ${result.stdout}${result.stderr}`);
  }
}

/** Runs `task` over `items` with at most `limit` at once. */
export async function inParallel<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every key of the Redis Cluster matching `pattern` (SCAN on each master). */
export async function keysMatching(cluster: Cluster, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of cluster.nodes('master')) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

/** Write-behind journal entries not completed yet, over every partition (8 by default). */
export async function journalLength(cluster: Cluster, partitions = 8): Promise<number> {
  let total = 0;
  for (let partition = 0; partition < partitions; partition++)
    total += await cluster.xlen(`bc:{journal-${partition}}`);
  return total;
}

/** Whether a slot is the node's: its ranges read once (`slotsOf`), then asked per slot. */
export function servedBy(port: number): (slot: number) => boolean {
  const ranges = slotsOf(port);
  return (slot) => ranges.some(([from, to]) => slot >= from && slot <= to);
}

/** Slot ranges a Redis node owns, from its own CLUSTER NODES line. */
export function slotsOf(port: number): [number, number][] {
  const nodes = spawnSync('redis-cli', ['-p', String(port), 'CLUSTER', 'NODES'], {
    encoding: 'utf8',
  }).stdout;
  const mine = nodes.split('\n').find((line) => line.includes('myself')) ?? '';
  return mine
    .split(' ')
    .slice(8)
    .filter((field) => /^\d+(-\d+)?$/.test(field))
    .map((field) => {
      const [from, to] = field.split('-').map(Number);
      return [from!, to ?? from!];
    });
}
