import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
}

export interface CountingProxy {
  url: string;
  requests: ProxiedRequest[];
  /** Requests seen with this method whose path includes `fragment`. */
  count(method: string, fragment: string): number;
  close(): Promise<void>;
}

/**
 * A transparent HTTP proxy in front of the S3 server that records every request, so tests
 * can count what the cache really asked of S3. Headers pass unchanged (SigV4 signs Host,
 * and the client signed for the proxy's address, which the server then sees).
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '' });
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
        answer.pipe(res);
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
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
