/**
 * The readers the modelled-S3 section compares, set up against one S3 endpoint: data-plane
 * processes and nginx caching proxies, each with a kept-alive connection for timed misses,
 * and blobs put straight into S3 with every reader's URL for them.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomFillSync } from 'node:crypto';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { S3Store } from '../dataplane/src/backends/s3.ts';
import { md5 } from '../test/harness/blobs.ts';
import type { SpawnedDataPlane } from '../test/harness/dataplane.ts';
import { BUCKET, s3Client, type ProductionStack } from '../test/harness/production.ts';
import { freePorts } from '../test/harness/services.ts';
import { NGINX_USER_AGENT, startNginxCache, type Nginx } from './nginx.ts';
import { MODELLED_PRODUCTION, MODELLED_S3, NGINX_CACHE } from './systems.ts';

/** What each system is called in this comparison. */
export interface Names {
  s3: string;
  plane: string;
  cache: string;
}

export const MODELLED: Names = { s3: MODELLED_S3, plane: MODELLED_PRODUCTION, cache: NGINX_CACHE };
export const LOOPBACK: Names = {
  s3: 'S3 direct (versitygw)',
  plane: 'blobcache (Redis + S3)',
  cache: `${NGINX_CACHE} (loopback S3)`,
};

/**
 * How S3's access log tells the readers apart: the data planes' AWS SDK names itself in its
 * User-Agent, and the nginx caches send their own (direct reads send neither).
 */
export const USER_AGENTS: Record<'plane' | 'cache', string> = {
  plane: 'aws-sdk-js',
  cache: NGINX_USER_AGENT,
};

/** What the S3 server logged, if it keeps an access log (the modelled one does). */
export interface S3Log {
  /** GETs of keys including `fragment` by clients whose User-Agent includes `userAgent`. */
  gets(fragment: string, userAgent?: string): number;
  /** Requests by operation, likewise. */
  operations(fragment: string, userAgent?: string): Record<string, number>;
}

export interface Systems {
  names: Names;
  log?: S3Log;
  client: S3Client;
  store: S3Store;
  planes: SpawnedDataPlane[];
  caches: Nginx[];
  redisPids: number[];
  /** One kept-alive connection per system, for the timed misses. */
  agents: Record<string, Agent>;
}

/** A blob put straight into the modelled S3, with each system's URL for it. */
export async function seed(
  systems: Systems,
  size: number,
): Promise<{ key: string; md5: string; urls: { plane: string[]; cache: string[]; s3: string } }> {
  const blob = randomFillSync(Buffer.allocUnsafe(size));
  const key = md5(blob);
  await systems.store.put(Readable.from([blob], { objectMode: false }), { key });
  const signed = new URL(
    await getSignedUrl(
      systems.client,
      new GetObjectCommand({ Bucket: BUCKET, Key: systems.store.objectKey(key) }),
      { expiresIn: 7 * 24 * 3600 },
    ),
  );
  const path = `${signed.pathname}${signed.search}`;
  return {
    key,
    md5: key,
    urls: {
      plane: systems.planes.map((plane) => `${plane.url}/v1/blobs/${key}`),
      cache: systems.caches.map((cache) => `${cache.url}${path}`),
      s3: signed.toString(),
    },
  };
}

/** Data planes and nginx caching proxies (`count` of each) reading from one S3 endpoint. */
export async function startSystems(
  stack: ProductionStack,
  dir: string,
  s3: { endpoint: string; log?: S3Log },
  names: Names,
  count: number,
  label: string,
): Promise<Systems> {
  const client = s3Client(s3.endpoint);
  const systems: Systems = {
    names,
    ...(s3.log === undefined ? {} : { log: s3.log }),
    client,
    store: new S3Store({ client, bucket: BUCKET, prefix: 'blobs' }),
    planes: [],
    caches: [],
    redisPids: stack.redis.nodes.map((node) => node.process.pid!),
    agents: {},
  };
  for (let i = 0; i < count; i++) {
    systems.planes.push(
      await stack.spawn(
        { BLOBCACHE_MAX_BLOB_BYTES: '1Gi', BLOBCACHE_S3_ENDPOINT: s3.endpoint },
        { compiled: true },
      ),
    );
    systems.caches.push(
      await startNginxCache(join(dir, `${label}-nginx-${i}`), await freePorts(1), s3.endpoint),
    );
  }
  // Kept-alive connections everywhere (warmed by the caller): the timed misses then pay S3's
  // round trips, not TCP handshakes (the data plane and nginx keep theirs open too).
  for (const system of [names.s3, names.plane, names.cache])
    systems.agents[system] = new Agent({ keepAlive: true, maxSockets: 1 });
  return systems;
}

export async function stopSystems(systems: Systems): Promise<void> {
  for (const agent of Object.values(systems.agents)) agent.destroy();
  await Promise.all(systems.planes.map((plane) => plane.stop('SIGKILL')));
  await Promise.all(systems.caches.map((cache) => cache.stop()));
  systems.client.destroy();
}
