import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { blobOf, md5 } from '../../harness/blobs.ts';
import type { SpawnedDataPlane } from '../../harness/dataplane.ts';
import { eventually } from '../../harness/eventually.ts';
import { metricValue } from '../../harness/production-helpers.ts';
import { startProductionStack, type ProductionStack } from '../../harness/production.ts';

/** The data plane's idle timeout here: the longest a client waits for an answer to start. */
const IDLE_MS = 1_000;
/** Longer than the idle timeout, so that only the server's own bound can answer in time. */
const PAUSE_MS = 5_000;

interface Outcome {
  /** Whether the server said `100 Continue` before the body was sent. */
  continued: boolean;
  status?: number;
  retryAfter?: string;
  contentType?: string;
  /** Set when the connection ended without a response. */
  error?: string;
  elapsedMs: number;
}

/**
 * An upload as curl sends it: `Expect: 100-continue`, the body only once the server said
 * `100 Continue` (or not at all for a GET).
 */
function send(url: string, method: 'PUT' | 'GET', body?: Buffer): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    let continued = false;
    const headers: Record<string, string> =
      body === undefined ? {} : { Expect: '100-continue', 'Content-Length': String(body.length) };
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      res.on('end', () =>
        resolve({
          continued,
          status: res.statusCode,
          retryAfter: res.headers['retry-after'],
          contentType: res.headers['content-type'],
          elapsedMs: Date.now() - started,
        }),
      );
    });
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('error', (error) =>
      resolve({ continued, error: String(error), elapsedMs: Date.now() - started }),
    );
    if (body === undefined) req.end();
  });
}

/** Pauses every master's clients (`WRITE`: writes only; `ALL`: reads too) for PAUSE_MS. */
function pauseMasters(stack: ProductionStack, mode: 'WRITE' | 'ALL'): void {
  for (const port of stack.redis.masters()) {
    const reply = spawnSync(
      'redis-cli',
      ['-p', String(port), 'CLIENT', 'PAUSE', String(PAUSE_MS), mode],
      { encoding: 'utf8' },
    );
    expect(reply.stdout.trim(), `CLIENT PAUSE on ${port}`).to.equal('OK');
  }
}

/**
 * Every request gets an answer: when Redis stalls (a failover pausing clients, a node
 * loading) longer than the idle timeout, a client that sent its request and waits is
 * answered 503 with Retry-After, never left with a closed connection (curl: "Empty reply
 * from server" after `100 Continue`).
 */
describe('stalled tiers: a waiting client is answered, not dropped', function () {
  this.timeout(120_000);
  let stack: ProductionStack;
  let plane: SpawnedDataPlane;

  before(async () => {
    stack = await startProductionStack();
    plane = await stack.spawn({ BLOBCACHE_IDLE_TIMEOUT_MS: String(IDLE_MS) });
  });
  after(async () => {
    await stack?.stop();
  });

  it('answers 503 with Retry-After to an upload sent after 100 Continue while Redis writes stall', async () => {
    const blob = blobOf(256 * 1024, 1501);
    const url = `${plane.url}/v1/blobs/${md5(blob)}`;
    pauseMasters(stack, 'WRITE');
    const stalled = await send(url, 'PUT', blob);
    expect(stalled, JSON.stringify(stalled)).to.include({
      continued: true,
      status: 503,
      retryAfter: '1',
      contentType: 'application/problem+json',
    });
    // Answered by the server's bound, while Redis was still paused.
    expect(stalled.elapsedMs).to.be.below(PAUSE_MS);
    // The client retries as told, and the upload goes through once Redis is back.
    const retried = await eventually(
      'the retried upload to be acknowledged',
      async () => {
        const outcome = await send(url, 'PUT', blob);
        return outcome.status === 201 || outcome.status === 200 ? outcome : null;
      },
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
    expect(retried.continued).to.equal(true);
    expect(await metricValue(plane.url, 'blobcache_stalled_answers_total')).to.be.at.least(1);
    const read = await fetch(url);
    expect(read.status).to.equal(200);
    expect(Buffer.from(await read.arrayBuffer()).equals(blob)).to.equal(true);
  });

  it('answers 503 to a request read whole while Redis stalls reads too', async () => {
    const blob = blobOf(40_000, 1502);
    const url = `${plane.url}/v1/blobs/${md5(blob)}`;
    const statuses: number[] = [];
    // Stored once Redis takes writes again (the pause of the test before may still run).
    await eventually(
      'the blob to be stored',
      async () => {
        const status = (await fetch(url, { method: 'PUT', body: blob })).status;
        statuses.push(status);
        return status === 201;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    pauseMasters(stack, 'ALL');
    const stalled = await send(url, 'GET');
    expect(stalled, JSON.stringify(stalled)).to.include({ status: 503, retryAfter: '1' });
    expect(stalled.elapsedMs).to.be.below(PAUSE_MS);
    const read = await eventually(
      'the blob to be served again',
      async () => {
        const response = await fetch(url);
        return response.status === 200 ? Buffer.from(await response.arrayBuffer()) : null;
      },
      { timeoutMs: 30_000, intervalMs: 1000 },
    );
    expect(read.equals(blob)).to.equal(true);
  });
});
