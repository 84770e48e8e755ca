/**
 * `npm run dev:services` starts a local Redis Cluster (3 masters + 3 replicas) and an
 * S3-compatible server (versitygw) in the background and writes their settings to
 * `.dev/services.env`; `npm run dev:services -- stop` stops them.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  S3_ACCESS_KEY,
  S3_REGION,
  S3_SECRET_KEY,
  startRedisCluster,
  startS3Server,
} from '../test/harness/services.ts';

const DEV_DIR = join(import.meta.dirname, '..', '.dev');
const STATE = join(DEV_DIR, 'services.json');
const ENV_FILE = join(DEV_DIR, 'services.env');
const REDIS_BASE_PORT = 7100;
const S3_PORT = 7070;
const BUCKET = 'blobcache';

interface State {
  pids: number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readState(): Promise<State | null> {
  if (!existsSync(STATE)) return null;
  return JSON.parse(await readFile(STATE, 'utf8')) as State;
}

async function start(): Promise<void> {
  const state = await readState();
  if (state !== null && state.pids.some(alive)) {
    console.log(
      `Services already running; settings in ${ENV_FILE} (stop with: npm run dev:services -- stop)`,
    );
    return;
  }
  await rm(join(DEV_DIR, 'redis'), { recursive: true, force: true });
  await mkdir(DEV_DIR, { recursive: true });
  const redis = await startRedisCluster({
    dir: join(DEV_DIR, 'redis'),
    basePort: REDIS_BASE_PORT,
    detached: true,
    maxMemory: '1gb',
  });
  const s3 = await startS3Server({ dir: join(DEV_DIR, 's3'), port: S3_PORT, detached: true });
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((error: unknown) => {
    if (!String(error).includes('BucketAlreadyOwnedByYou')) throw error;
  });
  client.destroy();
  const pids = [...redis.nodes.map((node) => node.process.pid!), ...s3.pids()];
  await writeFile(STATE, JSON.stringify({ pids } satisfies State));
  const env = {
    BLOBCACHE_REDIS_NODES: redis.nodeList,
    BLOBCACHE_S3_BUCKET: BUCKET,
    BLOBCACHE_S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
    AWS_REGION: S3_REGION,
  };
  await writeFile(
    ENV_FILE,
    Object.entries(env)
      .map(([key, value]) => `${key}=${value}\n`)
      .join(''),
  );
  console.log(`Started Redis Cluster on ${redis.nodeList} and S3 on ${s3.endpoint}.`);
  console.log(`Settings: .dev/services.env. Run the data plane on them with:`);
  console.log(`  env $(cat .dev/services.env | xargs) npm start`);
}

async function stop(): Promise<void> {
  const state = await readState();
  for (const pid of state?.pids ?? []) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await rm(STATE, { force: true });
  await rm(ENV_FILE, { force: true });
  console.log(state === null ? 'No services were running.' : 'Stopped the services.');
}

const command = process.argv[2] ?? 'start';
if (command === 'start') await start();
else if (command === 'stop') await stop();
else {
  console.error(`Unknown command '${command}': use start or stop`);
  process.exit(2);
}
