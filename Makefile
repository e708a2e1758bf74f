# Trellis: build, test and demo. `make test` is what CI runs (.ci/run).

GO            ?= go
FORTIO_VERSION = 1.66.5
GOBIN         := $(shell $(GO) env GOPATH)/bin
# Tests find fortio (installed by `go install`) in $(go env GOPATH)/bin.
export PATH   := $(GOBIN):$(PATH)

.PHONY: all build test fuzz deps fortio demo vet fmt clean bench bench-xds haproxy

all: build

## build: the trellis binary, bin/trellis
build:
	$(GO) build -o bin/trellis ./cmd/trellis

## test: every test (which replays the fuzz seed corpora), then each fuzz target for
## 5s (hack/fuzz-smoke.sh); first installs what they need (hack/test-deps.sh)
test: deps
	$(GO) test -count=1 -timeout 30m ./...
	FUZZTIME=5s GO=$(GO) bash hack/fuzz-smoke.sh

## fuzz: each fuzz target for FUZZTIME (default 1m), one worker each (docs/fuzzing.md)
FUZZTIME ?= 1m
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash hack/fuzz-smoke.sh

## deps: Debian packages, fortio and the Kubernetes test servers the tests use
deps:
	bash hack/test-deps.sh

## fortio: install fortio $(FORTIO_VERSION), the end-to-end tests' apps, unless present
fortio:
	@if fortio version 2>/dev/null | grep -q '^$(FORTIO_VERSION)'; then \
		echo "fortio $(FORTIO_VERSION) found: $$(command -v fortio)"; \
	else \
		echo "installing fortio $(FORTIO_VERSION)"; \
		$(GO) install fortio.org/fortio@v$(FORTIO_VERSION); \
	fi

## bench: the data-plane benchmark, side by side: direct, one HAProxy hop, two Trellis
## sidecars (fortio -jitter, 1000 req/s, 16 connections, 1 KiB; HTTP/1.1, gRPC, TCP, max
## throughput, HTTP/1.1 in lockstep), then the Go benchmarks; report in bench/results/latest.{md,json,png}.
## BENCH_DURATION=3s for a quick run.
BENCH_DURATION ?= 30s
bench: fortio haproxy
	$(GO) run ./bench/cmd/meshbench -t $(BENCH_DURATION)

## bench-xds: the control plane with 1,000 and 5,000 simulated proxies (Delta ADS) over
## 1,000 services in 50 namespaces, scoped by Sidecars, and unscoped with 1,000;
## report in bench/results/xds-latest.{md,json}
bench-xds:
	$(GO) run ./bench/cmd/xdsload -proxies 1000,5000 -services 1000 -namespaces 50 -scoping sidecar,none -unscoped-max 1000

## haproxy: install Debian's haproxy, the benchmark's reference proxy, unless present
haproxy:
	@if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then \
		echo "haproxy found"; \
	else \
		apt-get update && apt-get install -y --no-install-recommends haproxy; \
	fi

## demo: run the demo mesh until interrupted
demo:
	$(GO) run ./cmd/trellis demo

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w cmd internal test

clean:
	rm -rf bin
