# One image, two entry points: the data plane (default) and the operator
# (`node dist/operator/src/main.js`). Built from TypeScript to plain JavaScript; runs as a
# non-root user.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY dataplane ./dataplane
COPY operator ./operator
RUN npm run build && npm prune --omit=dev

FROM node:24-slim
ENV NODE_ENV=production \
    BLOBCACHE_HOST=0.0.0.0 \
    BLOBCACHE_DATA_DIR=/var/lib/blobcache
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
RUN mkdir -p /var/lib/blobcache && chown node:node /var/lib/blobcache
USER node
EXPOSE 8080
# A small young generation frees streamed buffers sooner (docs/decisions/0004).
CMD ["node", "--max-semi-space-size=2", "dist/dataplane/src/main.js"]
