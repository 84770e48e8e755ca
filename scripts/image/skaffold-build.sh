#!/usr/bin/env bash
# skaffold's custom build for machines without a Docker engine (profile `no-docker`):
# builds one image with `npm run image`, tagged as skaffold asks ($IMAGE), and imports it
# into every containerd socket listed in BLOBCACHE_CONTAINERD_SOCKETS (space-separated),
# the way the end-to-end tier loads its nodes. There is no registry to push to. The
# archive goes to BLOBCACHE_IMAGE_OUT (default build/images).
#
#   IMAGE=blobcache/redis:dev bash scripts/image/skaffold-build.sh redis
set -euo pipefail
cd "$(dirname "$0")/../.."

name="${1:?usage: skaffold-build.sh blobcache|redis}"
: "${IMAGE:?skaffold sets IMAGE to the reference to build}"
if [ "${PUSH_IMAGE:-false}" = "true" ]; then
  echo "skaffold-build.sh cannot push $IMAGE: without Docker there is no registry client here; set build.local.push to false" >&2
  exit 1
fi

out="${BLOBCACHE_IMAGE_OUT:-build/images}"
npm run --silent image -- --only "$name" --"$name"-image "$IMAGE" --out "$out"
for socket in ${BLOBCACHE_CONTAINERD_SOCKETS:-}; do
  ctr --address "$socket" -n k8s.io images import "$out/$name.tar"
done
