/**
 * nginx references started on loopback, one worker each (like one data-plane process):
 * a static file server over the same blobs as files, and the caching reverse proxy a
 * platform team would put in front of S3 instead of this project.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustUndo } from './cleanup.ts';

/** What the caching proxies tell S3 they are, so S3's access log tells their requests apart. */
export const NGINX_USER_AGENT = 'nginx-caching-proxy';

export interface Nginx {
  url: string;
  /** The worker's pid (it serves every request; the master only supervises). */
  workerPid(): number;
  stop(): Promise<void>;
}

export interface StaticNginx extends Nginx {
  root: string;
}

async function launch(dir: string, port: number, http: string): Promise<Nginx> {
  await mkdir(dir, { recursive: true });
  // nginx's workers drop root privileges: let them into the (mkdtemp, 0700) folders.
  for (const folder of [join(dir, '..'), dir]) chmodSync(folder, 0o755);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')};
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path ${join(dir, 'client-temp')};
  proxy_temp_path ${join(dir, 'proxy-temp')};
  fastcgi_temp_path ${join(dir, 'fastcgi-temp')};
  uwsgi_temp_path ${join(dir, 'uwsgi-temp')};
  scgi_temp_path ${join(dir, 'scgi-temp')};
${http}
}
`,
  );
  const child: ChildProcess = spawn('/usr/sbin/nginx', ['-c', conf, '-p', dir], {
    stdio: 'ignore',
  });
  const stop = mustUndo(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (
      await fetch(`${url}/`).then(
        () => true,
        () => false,
      )
    )
      break;
    await sleep(100);
  }
  return {
    url,
    workerPid() {
      const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8');
      const pid = Number(children.trim().split(' ')[0]);
      if (!(pid > 0)) throw new Error(`nginx ${child.pid} has no worker`);
      return pid;
    },
    stop,
  };
}

/** nginx with sendfile serving the files of a directory. */
export async function startNginx(dir: string, port: number): Promise<StaticNginx> {
  const root = join(dir, 'www');
  await mkdir(root, { recursive: true });
  const nginx = await launch(
    dir,
    port,
    // tcp_nopush: full frames for the large files this reference serves (the caching proxy
    // leaves it off, docs/decisions/0071).
    `  tcp_nopush on;
  server { listen 127.0.0.1:${port}; root ${root}; location / { } }`,
  );
  chmodSync(root, 0o755);
  return { ...nginx, root };
}

/**
 * nginx as a caching reverse proxy of an S3 endpoint, configured as its documentation
 * advises for a shared origin: responses cached on local disk (`proxy_cache`), concurrent
 * misses of one object on this instance coalesced into one upstream request
 * (`proxy_cache_lock`, with timeouts long enough for a 256 MiB fill, else waiters go to S3
 * themselves), kept-alive upstream connections. Clients send presigned S3 URLs; the cache
 * key is the path alone, so every signature of one object shares its entry.
 */
export async function startNginxCache(
  dir: string,
  port: number,
  s3Endpoint: string,
): Promise<Nginx> {
  const upstream = new URL(s3Endpoint).host;
  return launch(
    dir,
    port,
    `  proxy_cache_path ${join(dir, 'cache')} levels=1:2 keys_zone=blobs:16m max_size=16g inactive=7d use_temp_path=off;
  upstream s3 { server ${upstream}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://s3;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # A presigned URL signs the S3 endpoint's host.
      proxy_set_header Host ${upstream};
      proxy_set_header User-Agent ${NGINX_USER_AGENT};
      proxy_cache blobs;
      proxy_cache_key $uri;
      proxy_cache_valid 200 7d;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 300s;
      proxy_cache_lock_age 300s;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }`,
  );
}
