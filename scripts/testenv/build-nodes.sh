#!/usr/bin/env bash
# Installs and builds what the end-to-end tier's Kubernetes Nodes run, each only when missing:
# containerd, runc, the CNI plugins and iptables from Debian's packages; kubelet,
# kube-controller-manager, kube-scheduler and kube-proxy from the same wrapper module as
# kube-apiserver (build-control-plane.sh); crictl; CoreDNS; and the pause and client images
# (build-node-images.sh). Everything lands in ~/.cache/blobcache/testenv. Idempotent and
# quick once done; prints the folder of the Kubernetes binaries on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

K8S_VERSION="${BLOBCACHE_K8S_VERSION:-v1.34.4}"
CRICTL_VERSION=v1.34.0
# The 1.13 line is the last on client-go 0.34, the cluster's own minor version.
COREDNS_VERSION=v1.13.2
testenv="${BLOBCACHE_TESTENV_DIR:-$HOME/.cache/blobcache/testenv}"
bin="$testenv/k8s-$K8S_VERSION/bin"
export GOFLAGS=-trimpath CGO_ENABLED=0

install_packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null || need+=(iptables)
  command -v nft >/dev/null || need+=(nftables)
  command -v nfacct >/dev/null || need+=(nfacct)
  dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
  command -v curl >/dev/null || need+=(curl)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v gcc >/dev/null || need+=(gcc libc6-dev)
  [ ${#need[@]} -eq 0 ] && return
  echo "== installing ${need[*]} (apt)" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root (or run: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
}

# kubelet and the other node components come from the module kube-apiserver was built in, so
# their shared packages are compiled once. The lock keeps two builds from editing its go.mod
# at the same time (build-control-plane.sh takes the same lock).
build_kubernetes_nodes() {
  local missing=()
  for command in kubelet kube-controller-manager kube-scheduler kube-proxy; do
    [ -x "$bin/$command" ] || missing+=("$command")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  cd "$testenv/k8s-$K8S_VERSION/module"
  exec 9>"$testenv/k8s-$K8S_VERSION/module.lock"
  flock 9
  for command in "${missing[@]}"; do
    echo "== building $command $K8S_VERSION" >&2
    nice -n 10 go get -tool "k8s.io/kubernetes/cmd/$command@$K8S_VERSION" >&2
    nice -n 10 go build -pgo=off -ldflags "$ldflags" -o "$bin/$command" "k8s.io/kubernetes/cmd/$command" >&2
  done
  exec 9>&-
}

# crictl from a throwaway wrapper module (the module root of cri-tools fails `go install`
# with a go.sum error; a wrapper resolves it).
build_crictl() {
  [ -x "$bin/crictl" ] && return
  echo "== building crictl $CRICTL_VERSION" >&2
  local work="$testenv/crictl-$CRICTL_VERSION/module"
  mkdir -p "$work"
  cd "$work"
  [ -f go.mod ] || go mod init blobcache.local/testenv-crictl >&2
  nice -n 10 go get "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" >&2
  nice -n 10 go build -ldflags "-s -w" -o "$bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl >&2
}

# CoreDNS with only the plugins the cluster uses (coredns-main.go): no cloud back ends to
# compile, and no `forward` plugin, so the cluster's DNS cannot send a query off the machine.
build_coredns() {
  local output="$testenv/coredns-$COREDNS_VERSION/bin/coredns"
  [ -x "$output" ] && return
  echo "== building coredns $COREDNS_VERSION" >&2
  local work="$testenv/coredns-$COREDNS_VERSION/module"
  mkdir -p "$work"
  cd "$work"
  [ -f go.mod ] || go mod init blobcache.local/testenv-coredns >&2
  cp "$here/coredns-main.go" main.go
  nice -n 10 go get "github.com/coredns/coredns/coremain@$COREDNS_VERSION" >&2
  nice -n 10 go mod tidy >&2
  nice -n 10 go build -ldflags "-s -w" -o "$output" . >&2
}

install_packages
# The Nodes run the project's own control-plane build (the kubelet must match its version),
# never binaries named by KUBEBUILDER_ASSETS.
echo "== control plane: $(env -u KUBEBUILDER_ASSETS bash "$here/build-control-plane.sh")" >&2
build_kubernetes_nodes
build_crictl
build_coredns
bash "$here/build-node-images.sh" >&2
echo "$bin"
