#!/usr/bin/env bash
# Builds the control-plane binaries the operator tests run against (kube-apiserver, etcd,
# kubectl) from the Go module proxy into the test cache, unless they are there already or
# KUBEBUILDER_ASSETS names a folder that has them. Idempotent; prints the folder on success.
set -euo pipefail

K8S_VERSION="${BLOBCACHE_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${BLOBCACHE_ETCD_VERSION:-v3.6.16}"
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
bin="$testenv/k8s-$K8S_VERSION/bin"

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/kubectl" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
export GOFLAGS=-trimpath CGO_ENABLED=0
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
staging="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  local work="$testenv/k8s-$K8S_VERSION/module"
  mkdir -p "$work"
  cd "$work"
  # build-nodes.sh adds the node components to this module: one go.mod editor at a time.
  exec 9>"$testenv/k8s-$K8S_VERSION/module.lock"
  flock 9
  [ -f go.mod ] || go mod init blobcache.local/testenv-k8s >&2
  # k8s.io/kubernetes maps its staging modules to v0.0.0 with local replaces; point each
  # at its published version instead.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  for module in $(awk '/^require/,/^\)/ {print $1" "$2}' "$gomod" | awk '$2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}'); do
    go mod edit "-replace=$module=$module@$staging"
  done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION" >&2
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  for command in kube-apiserver kubectl; do
    [ -x "$bin/$command" ] || go build -pgo=off -ldflags "$ldflags" -o "$bin/$command" "k8s.io/kubernetes/cmd/$command" >&2
  done
}

build_etcd() {
  local work="$testenv/etcd-$ETCD_VERSION/module"
  mkdir -p "$work"
  cd "$work"
  [ -f go.mod ] || go mod init blobcache.local/testenv-etcd >&2
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2
}

[ -x "$bin/etcd" ] || build_etcd
build_kubernetes
echo "$bin"
