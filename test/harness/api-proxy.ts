import { createServer, request, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { ControlPlane } from './control-plane.ts';

export interface ProxiedCall {
  method: string;
  path: string;
  /** The status the client got (0 while a streamed answer, such as a watch, is open). */
  status: number;
  /** performance.now() when the request arrived. */
  at: number;
  /** Answered by a fault rule, not by the API server. */
  injected: boolean;
}

export interface FaultRule {
  method?: string;
  path: RegExp;
  status: number;
  /** How many matching requests to fail. @default Infinity */
  times?: number;
}

export interface ApiProxy {
  /** https://127.0.0.1:<port>, for a kubeconfig (same CA as the API server). */
  server: string;
  calls: ProxiedCall[];
  /** Answers matching requests itself with `status` and a Kubernetes Status body. */
  fail(rule: FaultRule): void;
  clearFaults(): void;
  close(): Promise<void>;
}

/**
 * A real HTTPS proxy in front of the API server that records every call with the status it
 * got and can answer chosen calls with an error instead, so tests can count the operator's
 * API calls and inject transient failures (5xx, 409) while the objects themselves live in
 * the real API server. It presents the API server's own certificate and forwards as the
 * admin user.
 */
export async function startApiProxy(plane: ControlPlane): Promise<ApiProxy> {
  const upstream = new URL(plane.server);
  const calls: ProxiedCall[] = [];
  let rules: (FaultRule & { left: number })[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { cert: plane.servingCertData, key: plane.servingKeyData },
    (req, res) => {
      const call: ProxiedCall = {
        method: req.method ?? '',
        path: req.url ?? '',
        status: 0,
        at: performance.now(),
        injected: false,
      };
      calls.push(call);
      const rule = rules.find(
        (candidate) =>
          candidate.left > 0 &&
          (candidate.method === undefined || candidate.method === call.method) &&
          candidate.path.test(call.path),
      );
      if (rule !== undefined) {
        rule.left--;
        call.status = rule.status;
        call.injected = true;
        req.resume();
        res.writeHead(rule.status, { 'Content-Type': 'application/json' }).end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            status: 'Failure',
            message: 'injected by the test proxy',
            reason: rule.status === 409 ? 'Conflict' : 'InternalError',
            code: rule.status,
          }),
        );
        return;
      }
      const headers = { ...req.headers, host: upstream.host };
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers,
          ca: plane.caData,
          cert: plane.certData,
          key: plane.keyData,
        },
        (answer) => {
          call.status = answer.statusCode ?? 502;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          // A watch answers its headers long before any body: pass them on at once.
          res.flushHeaders();
          answer.pipe(res);
        },
      );
      forward.on('error', () => res.destroy());
      res.on('close', () => forward.destroy());
      req.pipe(forward);
    },
  );
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    fail(rule) {
      rules.push({ ...rule, left: rule.times ?? Infinity });
    },
    clearFaults() {
      rules = [];
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
