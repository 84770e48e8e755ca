# The project's two images, for users with Docker (`npm run image` builds the same two
# without a Docker engine; scripts/image/spec.ts declares them and a test keeps the two
# recipes in step):
#
#   docker build -t blobcache/blobcache:0.1.0 .                 the data plane and operator
#   docker build --target redis -t blobcache/redis:0.1.0 .      Debian's redis-server
#
# The blobcache image has no ENTRYPOINT: its command is the data plane; the operator and
# the backfill command are the other entry points, named in io.blobcache.entrypoint.*
# labels (a Pod picks one with `command`). Both run as a numeric non-root user and write
# nothing outside their data directory, so they run with a read-only root file system.

FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY dataplane ./dataplane
COPY operator ./operator
RUN npm run build && npm prune --omit=dev

FROM debian:bookworm-slim AS redis
# The user exists before the package is installed, so the package keeps this fixed id
# (the operator runs Redis pods as uid 999). Debian's security updates replace patch
# versions, so the version is not pinned.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid redis --home-dir /data --shell /usr/sbin/nologin redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data \
    && chown redis:redis /data
# The node start script the operator's Redis pods run (docs/decisions/0020).
COPY scripts/redis-node/start.sh /usr/local/lib/blobcache/redis-node/start.sh
LABEL io.blobcache.entrypoint.redis='["redis-server"]' \
      io.blobcache.entrypoint.node='["sh","/usr/local/lib/blobcache/redis-node/start.sh"]'
WORKDIR /data
USER 999:999
EXPOSE 6379 16379
CMD ["redis-server"]

FROM node:24-slim AS blobcache
ENV NODE_ENV=production \
    BLOBCACHE_HOST=0.0.0.0 \
    BLOBCACHE_DATA_DIR=/var/lib/blobcache
LABEL io.blobcache.entrypoint.dataplane='["node","--max-semi-space-size=2","dist/dataplane/src/main.js"]' \
      io.blobcache.entrypoint.operator='["node","dist/operator/src/main.js"]' \
      io.blobcache.entrypoint.backfill='["node","--max-semi-space-size=2","dist/dataplane/src/commands/backfill.js"]'
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
RUN mkdir -p /var/lib/blobcache && chown 1000:1000 /var/lib/blobcache
USER 1000:1000
EXPOSE 8080
# A small young generation frees streamed buffers sooner (docs/decisions/0004).
CMD ["node", "--max-semi-space-size=2", "dist/dataplane/src/main.js"]
