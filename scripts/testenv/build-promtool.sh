#!/usr/bin/env bash
# Builds Prometheus's promtool from the Go module proxy into the test cache (the packaging
# tests check the chart's alert rules with `promtool check rules` and `promtool test rules`),
# unless it is there already. Idempotent; prints the binary's path on success.
set -euo pipefail

# Prometheus publishes its Go module as v0.<minor>.<patch> for release v3.<minor>.<patch>.
PROMETHEUS_MODULE_VERSION="${BLOBCACHE_PROMETHEUS_MODULE_VERSION:-v0.316.0}"
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
dir="$testenv/promtool-$PROMETHEUS_MODULE_VERSION"
promtool="$dir/promtool"

if [ -x "$promtool" ]; then
  echo "$promtool"
  exit 0
fi

mkdir -p "$dir"
GOBIN="$dir" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" >&2
echo "$promtool"
