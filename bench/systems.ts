/** Names of the measured systems, as rows and targets refer to them. */
export const PRODUCTION = 'blobcache (Redis + S3)';
export const EMBEDDED = 'blobcache (embedded)';
export const FSYNC_LOOP = 'write + fsync + rename loop';
export const DURABLE_FSYNC_LOOP = 'same loop + directory fsync, 256 directories';
export const PUT_FLOOR = 'bare node:http server doing that loop';
export const UNREPLICATED_PUT_FLOOR = 'bare node:http server doing SET';
export const REPLICATED_PUT_FLOOR = 'bare node:http server doing SET + WAIT 1';
export const MODELLED_PRODUCTION = 'blobcache (Redis + modelled S3)';
export const NGINX_CACHE = 'nginx caching proxy';
export const MODELLED_S3 = 'S3 direct (modelled link)';
export const BARE_NODE = 'bare node:http (from memory)';
