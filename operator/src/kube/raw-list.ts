import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { ResourceType } from './access.ts';

export interface ObjectList {
  items: KubernetesObject[];
  metadata: { resourceVersion?: string };
}

/** An API error carrying the HTTP status as `code`, like client-node's ApiException. */
export class ApiStatusError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = 'ApiStatusError';
    this.code = code;
  }
}

async function getJson(config: KubeConfig, url: URL): Promise<unknown> {
  const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await config.applyToHTTPSOptions(options);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new ApiStatusError(res.statusCode ?? 0, `GET ${url.pathname}: ${body}`));
          return;
        }
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(new Error(`GET ${url.pathname} answered malformed JSON`, { cause: error }));
        }
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`GET ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Lists a collection as plain JSON, page by page (so a large collection such as every Secret
 * of a cluster never arrives as one response), each item given its apiVersion and kind (list
 * items omit them). The objects look exactly like the ones a watch delivers.
 */
export async function listAll(
  config: KubeConfig,
  type: ResourceType,
  path: string,
  labelSelector?: string,
): Promise<ObjectList> {
  const server = config.getCurrentCluster()?.server;
  if (server === undefined) throw new Error('The kubeconfig names no current cluster');
  const items: KubernetesObject[] = [];
  let resourceVersion: string | undefined;
  let token: string | undefined;
  do {
    const url = new URL(server.replace(/\/$/, '') + path);
    url.searchParams.set('limit', '500');
    if (labelSelector !== undefined) url.searchParams.set('labelSelector', labelSelector);
    if (token !== undefined) url.searchParams.set('continue', token);
    const page = (await getJson(config, url)) as {
      items?: KubernetesObject[];
      metadata?: { resourceVersion?: string; continue?: string };
    };
    for (const item of page.items ?? [])
      items.push({ ...item, apiVersion: type.apiVersion, kind: type.kind });
    resourceVersion = page.metadata?.resourceVersion;
    token = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
  } while (token !== undefined);
  return { items, metadata: { resourceVersion } };
}
