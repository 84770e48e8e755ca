#!/usr/bin/env bash
# Builds the container images the end-to-end tier imports into every Node's containerd, as
# docker-archive tars (what `ctr images import` reads; there is no registry to pull from):
#   pause   the sandbox image, compiled from build/pause/linux/pause.c of k8s.io/kubernetes;
#   client  busybox (sh, wget, nc, nslookup, httpd), curl and redis-cli with their libraries,
#           to run traffic from inside the cluster.
# Each only when missing, into ~/.cache/blobcache/testenv/images. The names and tags are the
# ones test/e2e/harness/images.ts imports; bump a version here and there together.
set -euo pipefail

K8S_VERSION="${BLOBCACHE_K8S_VERSION:-v1.34.4}"
PAUSE_VERSION=3.10.1
CLIENT_VERSION=1
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
images="$testenv/images"
mkdir -p "$images"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# Writes a one-layer docker-archive of the folder $1 to $2, tagged $3, whose process is the
# JSON array $4.
archive() {
  local rootfs="$1" output="$2" tag="$3" entrypoint="$4"
  local work
  work=$(mktemp -d)
  # Reproducible: same files, same bytes, whatever the clock or the user.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
  local layer
  layer=$(sha256 "$work/layer.tar")
  mkdir "$work/$layer"
  mv "$work/layer.tar" "$work/$layer/layer.tar"
  printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Entrypoint":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$entrypoint" "$layer" >"$work/config.json"
  local config
  config=$(sha256 "$work/config.json")
  mv "$work/config.json" "$work/$config.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config" "$tag" "$layer" >"$work/manifest.json"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" -cf "$output.partial" manifest.json "$config.json" "$layer"
  mv "$output.partial" "$output"
  rm -rf "$work"
}

# Copies a dynamically linked binary and every library `ldd` lists (the loader included)
# into the folder $2, at the same paths.
copy_with_libraries() {
  local binary="$1" rootfs="$2"
  install -D "$binary" "$rootfs$binary"
  # mawk has no \s: split on blanks and keep the absolute paths.
  for library in $(ldd "$binary" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}'); do
    [ -e "$rootfs$library" ] || install -D "$(readlink -f "$library")" "$rootfs$library"
  done
}

build_pause() {
  local output="$images/pause-$PAUSE_VERSION.tar"
  [ -f "$output" ] && return
  echo "== building the pause image $PAUSE_VERSION" >&2
  local source
  source=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  local rootfs
  rootfs=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-blobcache" -o "$rootfs/pause" "$source/build/pause/linux/pause.c"
  archive "$rootfs" "$output" "blobcache.local/e2e/pause:$PAUSE_VERSION" '["/pause"]'
  rm -rf "$rootfs"
}

build_client() {
  local output="$images/client-$CLIENT_VERSION.tar"
  [ -f "$output" ] && return
  echo "== building the client image $CLIENT_VERSION" >&2
  local rootfs
  rootfs=$(mktemp -d)
  install -D /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  copy_with_libraries "$(command -v curl)" "$rootfs"
  copy_with_libraries "$(command -v redis-cli)" "$rootfs"
  mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/www"
  chmod 1777 "$rootfs/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  archive "$rootfs" "$output" "blobcache.local/e2e/client:$CLIENT_VERSION" '["/bin/sh"]'
  rm -rf "$rootfs"
}

build_pause
build_client
echo "$images"
