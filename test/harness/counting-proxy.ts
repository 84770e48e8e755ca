import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
}

/** A hold on response bodies: `reached` once one stopped there; `release` lets them go on. */
export interface BodyHold {
  reached: Promise<void>;
  release(): void;
}

export interface CountingProxy {
  url: string;
  requests: ProxiedRequest[];
  /** Requests seen with this method whose path includes `fragment`. */
  count(method: string, fragment: string): number;
  /**
   * Stops the body of every response to a GET whose path includes `fragment` once it has
   * passed `afterBytes` bytes, until released: a read of S3 held mid-object, on a signal.
   */
  hold(fragment: string, afterBytes: number): BodyHold;
  close(): Promise<void>;
}

interface ActiveHold {
  fragment: string;
  afterBytes: number;
  released: boolean;
  waiting: (() => void)[];
  reach: () => void;
}

/**
 * A transparent HTTP proxy in front of the S3 server that records every request, so tests
 * can count what the cache really asked of S3. Headers pass unchanged (SigV4 signs Host,
 * and the client signed for the proxy's address, which the server then sees).
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const holds: ActiveHold[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
    const hold =
      req.method === 'GET'
        ? holds.find((candidate) => (req.url ?? '').includes(candidate.fragment))
        : undefined;
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (hold === undefined) {
          answer.pipe(res);
          return;
        }
        let passed = 0;
        answer.on('data', (chunk: Buffer) => {
          if (!res.write(chunk)) answer.pause();
          passed += chunk.length;
          if (passed >= hold.afterBytes && !hold.released) {
            answer.pause();
            hold.waiting.push(() => answer.resume());
            hold.reach();
          }
        });
        res.on('drain', () => {
          if (hold.released || passed < hold.afterBytes) answer.resume();
        });
        answer.on('end', () => res.end());
        answer.on('error', () => res.destroy());
        res.on('close', () => answer.destroy());
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    count: (method, fragment) =>
      requests.filter((entry) => entry.method === method && entry.path.includes(fragment)).length,
    hold(fragment, afterBytes) {
      let reach!: () => void;
      const reached = new Promise<void>((resolve) => (reach = resolve));
      const active: ActiveHold = { fragment, afterBytes, released: false, waiting: [], reach };
      holds.push(active);
      return {
        reached,
        release() {
          active.released = true;
          holds.splice(holds.indexOf(active), 1);
          for (const resume of active.waiting.splice(0)) resume();
        },
      };
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
