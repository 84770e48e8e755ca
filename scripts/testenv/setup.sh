#!/usr/bin/env bash
# Installs what the integration and operator tests start, when missing (npm test runs this
# first, so `npm test` passes on a fresh machine): redis-server from Debian's packages,
# versitygw and the Kubernetes control plane built from the Go module proxy into
# ~/.cache/blobcache/testenv. Idempotent and quick once done.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3)
# The embedded tier's directory-sync test counts fsync calls with strace.
command -v strace >/dev/null || need+=(strace)
# The end-to-end harness deletes the conntrack entries kube-proxy leaves (stale-flows.ts).
command -v conntrack >/dev/null || need+=(conntrack)
# The schemathesis tier runs in a venv; Debian ships venv support separately.
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (apt)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root (or run: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
if [ ! -x "$testenv/bin/versitygw" ]; then
  echo "== building versitygw (the S3-compatible test server) from the Go module proxy"
  # Same version as VERSITYGW_VERSION in test/harness/services.ts.
  GOBIN="$testenv/bin" GOFLAGS=-trimpath go install github.com/versity/versitygw/cmd/versitygw@v1.7.0
fi

# Same major version as test/schemathesis/api.test.ts expects (its CLI and config format).
schemathesis="$testenv/schemathesis-4"
if [ ! -x "$schemathesis/bin/st" ]; then
  echo "== installing schemathesis (API tests from docs/openapi.yaml) from PyPI"
  rm -rf "$schemathesis"
  python3 -m venv "$schemathesis"
  "$schemathesis/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi

echo "== control plane for the operator tests: $(bash scripts/testenv/build-control-plane.sh)"
echo "== Nodes for the end-to-end tests: $(bash scripts/testenv/build-nodes.sh)"
# Packaging tests: Helm (also used by the end-to-end tier), promtool for the alert rules,
# hadolint for the Dockerfile.
echo "== helm: $(bash scripts/testenv/build-helm.sh)"
echo "== promtool: $(bash scripts/testenv/build-promtool.sh)"
echo "== hadolint: $(bash scripts/testenv/install-hadolint.sh)"
