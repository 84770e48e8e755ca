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
# Helm's Makefile stamps the version, and the Kubernetes version `helm template` and
# `helm lint` assume, from its client-go (v0.34 is 1.34); without them Helm would claim
# to be v3.19 and render for Kubernetes 1.20.
gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
k8s_minor=$(awk '$1 == "k8s.io/client-go" {split($2, v, "."); print v[2]}' "$gomod")
pkg=helm.sh/helm/v3/pkg
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for scope in lint/rules chartutil; do
  ldflags="$ldflags -X $pkg/$scope.k8sVersionMajor=1 -X $pkg/$scope.k8sVersionMinor=$k8s_minor"
done
GOBIN="$testenv/bin" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$helm"
