#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, skipping what is
# already there: Debian packages (as root, through apt-get), fortio from its Go module,
# and kube-apiserver + etcd built from their Go modules (cached). `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: redis-server (rate-limit store tests); haproxy (the benchmark's
# reference proxy, smoke-run by the tests); prometheus (the telemetry end-to-end test
# scrapes the sidecars with a real one); chromium (the dashboard test drives it headless);
# iptables and iproute2 (transparent-mode tests, as root).
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test-deps: missing Debian packages: ${need[*]} (run as root, or install them)" >&2
		exit 1
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

GOBIN="$(go env GOPATH)/bin"
FORTIO_VERSION=1.66.5
if ! "$GOBIN/fortio" version 2>/dev/null | grep -q "^${FORTIO_VERSION}"; then
	go install "fortio.org/fortio@v${FORTIO_VERSION}"
fi

# kube-apiserver and etcd for the Kubernetes tests (internal/kube/...), built once and cached.
bash hack/k8s-tools.sh
