/**
 * The HTTP side shared by the bare PUT floor servers (bench/put-floor.ts,
 * bench/replicated-put-floor.ts): `PUT /v1/blobs/<md5>` runs `store`, then answers 201 as
 * the data plane does (500 with the error if it failed); anything else is 404. Prints
 * {"url": ...} once listening on a free loopback port.
 */
import { createServer, type IncomingMessage } from 'node:http';

export function serveFloorPuts(store: (key: string, body: IncomingMessage) => Promise<void>): void {
  const server = createServer((req, res) => {
    const key = /^\/v1\/blobs\/([0-9a-f]{32})$/.exec(req.url ?? '')?.[1];
    if (req.method !== 'PUT' || key === undefined) {
      res.writeHead(404).end();
      return;
    }
    store(key, req).then(
      () => res.writeHead(201, { 'Content-Type': 'application/json' }).end('{"created":true}'),
      (error: unknown) => res.writeHead(500).end(String(error)),
    );
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    console.log(JSON.stringify({ url: `http://127.0.0.1:${address.port}` }));
  });
}
