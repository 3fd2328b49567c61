# Jabbergate — the two commands that matter: `make demo` and `make test`.
GO      ?= go
BIN     := bin/jabbergate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build demo test test-short deps vet fmt-check bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/jabbergate

## deps: install the servers the tests and the demo run (Prosody, ejabberd, Redis) from Debian packages when root; otherwise say what to install.
deps:
	@bash .ci/install-deps.sh

## demo: a local Prosody with user demo@localhost and the gateway with the echo network.
demo: deps build
	@bash deploy/demo/demo.sh

## test: every test, unit and integration (real Prosody, ejabberd and Redis), with the race detector.
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: Go benchmarks (stanza, jidmap, stores, the bridge's message paths on bolt and Redis), then
## jgbench end to end against real Prosody and ejabberd, gateway vs. the limit component (about 1.5–3 min).
## Method and figures: docs/performance.md.
BENCH_FLAGS ?= -n 20000 -msgn 1000 -warm 2000 -window 64 -runs 1
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300ms ./component/stanza ./component ./bridges/jidmap ./bridges/store/bolt ./bridges/store/redis
	$(GO) test -run '^$$' -bench 'Inbound|OutboundEcho' -benchmem -benchtime 200x ./bridges
	$(GO) test -run '^$$' -bench 'Startup' -benchmem -benchtime 1x ./bridges
	$(GO) build -o bin/jgbench ./cmd/jgbench
	bin/jgbench -gateway $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf bin .demo
