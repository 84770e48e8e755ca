#!/usr/bin/env bash
# Installs the benchmark's load generators and references from Debian's packages, once.
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
# The modelled S3 link (bench/link-emulator): Go's own build cache makes a rebuild cheap.
command -v go >/dev/null || { echo 'bench/setup.sh: Go is needed to build bench/link-emulator' >&2; exit 1; }
(cd "$(dirname "$0")/link-emulator" && go build -trimpath -o "$HOME/.cache/blobcache/bench/link-emulator" .)
