# Trellis: build, test and demo. `make test` is what CI runs (.ci/run).

GO            ?= go
FORTIO_VERSION = 1.66.5
GOBIN         := $(shell $(GO) env GOPATH)/bin
# Tests find fortio (installed by `go install`) in $(go env GOPATH)/bin.
export PATH   := $(GOBIN):$(PATH)

.PHONY: all build test fortio demo vet fmt clean

all: build

## build: the trellis binary, bin/trellis
build:
	$(GO) build -o bin/trellis ./cmd/trellis

## test: every test, end to end included (installs fortio if missing)
test: fortio
	$(GO) test -count=1 -timeout 20m ./...

## fortio: install fortio $(FORTIO_VERSION), the end-to-end tests' apps, unless present
fortio:
	@if fortio version 2>/dev/null | grep -q '^$(FORTIO_VERSION)'; then \
		echo "fortio $(FORTIO_VERSION) found: $$(command -v fortio)"; \
	else \
		echo "installing fortio $(FORTIO_VERSION)"; \
		$(GO) install fortio.org/fortio@v$(FORTIO_VERSION); \
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
