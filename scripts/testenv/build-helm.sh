#!/usr/bin/env bash
# Builds Helm from the Go module proxy into the test cache (the packaging and end-to-end
# tests run `helm lint`, `helm template` and `helm install` with it), unless it is there
# already. Idempotent; prints the binary's path on success.
#
# v3.19.5 is pinned because its Kubernetes client libraries (v0.34) match the control
# plane the tests run (v1.34); newer Helm 3 releases build against later minors.
set -euo pipefail

HELM_VERSION="${BLOBCACHE_HELM_VERSION:-v3.19.5}"
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
helm="$testenv/bin/helm"

if [ -x "$helm" ] && "$helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
  echo "$helm"
  exit 0
fi

mkdir -p "$testenv/bin"
# helm.sh/helm/v3's go.mod has no replace lines, so `go install module@version` works.
# The version string is normally stamped by Helm's Makefile; without it `helm version`
# would not say which release this is.
GOBIN="$testenv/bin" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$helm"
