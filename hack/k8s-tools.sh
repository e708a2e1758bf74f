#!/usr/bin/env bash
# Builds the test-only Kubernetes servers, kube-apiserver (k8s.io/kubernetes v1.37.2) and
# etcd (go.etcd.io/etcd/server/v3 v3.6.16), from their Go modules into a cache directory,
# skipping whichever is already there. internal/kube/kubetest starts them on loopback.
#
#   hack/k8s-tools.sh            # build into ${TRELLIS_K8S_BIN:-$HOME/.cache/trellis/k8s/v1.37.2}
#   TRELLIS_K8S_BIN=/x hack/k8s-tools.sh
#
# The modules live in tools/k8s (kube-apiserver) and tools/k8s/etcd (etcd): kubernetes
# v1.37 needs etcd v3.7 as a library, so the etcd server is a module of its own. Neither
# touches the product's go.mod. The first build takes 6-8 minutes of CPU on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

bin="${TRELLIS_K8S_BIN:-${HOME:-/tmp}/.cache/trellis/k8s/v1.37.2}"
mkdir -p "$bin"

build() { # build NAME MODULE_DIR PACKAGE
	local name="$1" dir="$2" pkg="$3"
	if [[ -x "$bin/$name" ]]; then
		echo "k8s-tools: $bin/$name already built"
		return
	fi
	echo "k8s-tools: building $name from $pkg into $bin"
	# Build to a temporary name so an interrupted build never leaves a partial binary.
	(cd "$root/$dir" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/.$name.tmp" "$pkg")
	mv "$bin/.$name.tmp" "$bin/$name"
}

build etcd tools/k8s/etcd go.etcd.io/etcd/server/v3
build kube-apiserver tools/k8s k8s.io/kubernetes/cmd/kube-apiserver
echo "k8s-tools: done: $(ls "$bin" | tr '\n' ' ')"
