/**
 * Steady PUT/GET load through a data plane, bounded in rate and count, recording what a
 * client sees: every acknowledged blob (201/200), every failure by status, and the longest
 * time between two successful requests.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Acknowledged {
  md5: string;
  size: number;
  seed: number;
}

export interface LoadReport {
  puts: number;
  gets: number;
  /** `PUT 503`, `GET error` (a failed connection), … → count, for every non-success. */
  failures: Map<string, number>;
  /** Blobs whose GET failed at least once. */
  unavailable: Set<string>;
  /** Longest time without any successful request while the load ran. */
  longestGapMs: number;
  /** When that gap ended (epoch ms). */
  longestGapEndedAt: number;
  /** GETs whose body did not match the blob (must stay 0). */
  corrupt: number;
}

/** Deterministic bytes of a blob from its seed (so it can be re-created to compare). */
export function blobBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  // 64 KiB of random bytes from the seed, repeated with the offset stamped in: cheap, and
  // no two blobs share a digest.
  const block = createHash('sha512').update(`seed-${seed}`).digest();
  const piece = Buffer.alloc(65_536);
  for (let offset = 0; offset < piece.length; offset += block.length)
    createHash('sha512').update(block).update(String(offset)).digest().copy(piece, offset);
  for (let offset = 0; offset < size; offset += piece.length) {
    piece.writeUInt32LE(offset >>> 0, 0);
    piece.copy(out, offset, 0, Math.min(piece.length, size - offset));
  }
  return out;
}

const md5Of = (data: Buffer) => createHash('md5').update(data).digest('hex');

export async function putBlob(
  url: string,
  size: number,
  seed: number,
): Promise<{ status: number; blob: Acknowledged }> {
  const data = blobBytes(size, seed);
  const md5 = md5Of(data);
  const response = await fetch(`${url}/v1/blobs/${md5}`, { method: 'PUT', body: data });
  await response.arrayBuffer();
  return { status: response.status, blob: { md5, size, seed } };
}

/** GETs a blob and says whether it came back whole and right (status otherwise). */
export async function getBlob(
  url: string,
  blob: Acknowledged,
): Promise<{ status: number; intact: boolean }> {
  const response = await fetch(`${url}/v1/blobs/${blob.md5}`);
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, intact: response.status === 200 && md5Of(body) === blob.md5 };
}

export interface LoadOptions {
  /** Pause after each PUT. */
  putEveryMs: number;
  minBytes: number;
  maxBytes: number;
  /** PUTs at most (the load is bounded in count as well as in time). */
  maxPuts: number;
  /** Seed of the first blob (each PUT a new one). */
  seed: number;
}

export class Load {
  readonly acknowledged: Acknowledged[] = [];
  private readonly report: LoadReport = {
    puts: 0,
    gets: 0,
    failures: new Map(),
    unavailable: new Set(),
    longestGapMs: 0,
    longestGapEndedAt: 0,
    corrupt: 0,
  };
  private running = false;
  private loops: Promise<void>[] = [];
  private lastSuccess = 0;
  private seed: number;
  private readonly url: string;
  private readonly options: LoadOptions;

  constructor(url: string, options: LoadOptions) {
    this.url = url;
    this.options = options;
    this.seed = options.seed;
  }

  private success(): void {
    const now = Date.now();
    if (this.lastSuccess > 0 && now - this.lastSuccess > this.report.longestGapMs) {
      this.report.longestGapMs = now - this.lastSuccess;
      this.report.longestGapEndedAt = now;
    }
    this.lastSuccess = now;
  }

  private failure(status: string): void {
    this.report.failures.set(status, (this.report.failures.get(status) ?? 0) + 1);
  }

  private async putLoop(): Promise<void> {
    while (this.running && this.report.puts < this.options.maxPuts) {
      const { minBytes, maxBytes } = this.options;
      const size = minBytes + Math.floor(Math.random() * (maxBytes - minBytes));
      this.report.puts++;
      try {
        const { status, blob } = await putBlob(this.url, size, this.seed++);
        if (status === 201 || status === 200) {
          this.acknowledged.push(blob);
          this.success();
        } else this.failure(`PUT ${status}`);
      } catch {
        this.failure('PUT error');
      }
      await sleep(this.options.putEveryMs);
    }
  }

  private async getLoop(): Promise<void> {
    while (this.running) {
      const blob = this.acknowledged[Math.floor(Math.random() * this.acknowledged.length)];
      if (blob === undefined) {
        await sleep(50);
        continue;
      }
      this.report.gets++;
      try {
        const { status, intact } = await getBlob(this.url, blob);
        if (status === 200 && !intact) this.report.corrupt++;
        if (intact) this.success();
        else {
          this.failure(`GET ${status}`);
          this.report.unavailable.add(blob.md5);
        }
      } catch {
        this.failure('GET error');
        this.report.unavailable.add(blob.md5);
      }
      await sleep(25);
    }
  }

  start(): void {
    this.running = true;
    this.lastSuccess = Date.now();
    this.loops = [this.putLoop(), this.getLoop()];
  }

  async stop(): Promise<LoadReport> {
    this.running = false;
    await Promise.all(this.loops);
    return {
      ...this.report,
      failures: new Map(this.report.failures),
      unavailable: new Set(this.report.unavailable),
    };
  }
}
