# Jabbergate — the two commands that matter: `make demo` and `make test`.
GO      ?= go
BIN     := bin/jabbergate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build demo test test-short deps deps-demo vet fmt-check bench clean fuzz vulncheck

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/jabbergate

## deps: install the servers the tests run (Prosody, ejabberd, Redis, Kannel, Dovecot, promtool) from Debian packages when root; otherwise say what to install.
deps:
	@bash .ci/install-deps.sh

## deps-demo: only what the demo needs (Prosody).
deps-demo:
	@bash .ci/install-deps.sh --demo

## demo: a local Prosody with user demo@localhost and the gateway with the echo network.
demo: deps-demo build
	@bash deploy/demo/demo.sh

## test: every test, unit and integration (real Prosody, ejabberd and Redis), with the race detector.
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory fuzz

test-short:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: Go benchmarks (stanza, jidmap, stores, the bridge's message paths on bolt, pebble and Redis), then
## jgbench end to end against real Prosody and ejabberd, gateway vs. the limit component (about 2–3.5 min).
## Method and figures: docs/performance.md.
BENCH_FLAGS ?= -n 20000 -msgn 1000 -warm 2000 -window 64 -runs 1
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 300ms ./component/stanza ./component ./bridges/jidmap ./bridges/store/bolt ./bridges/store/pebble ./bridges/store/redis
	$(GO) test -run '^$$' -bench 'Inbound|Outbound|DomainIQ' -benchmem -benchtime 200x ./bridges
	$(GO) test -run '^$$' -bench 'Startup' -benchmem -benchtime 1x ./bridges
	$(GO) build -o bin/jgbench ./cmd/jgbench
	bin/jgbench -gateway $(BIN) $(BENCH_FLAGS)

## fuzz: every fuzz target for a bounded number of inputs each (FUZZ_EXECS; about 2–4 s a target on
## an idle machine). A count, not -fuzztime=3s: a duration races Go 1.26's fuzz coordinator under
## load and fails with "context deadline exceeded" and no input (golang/go#75804). `go test ./...`
## already replays every seed and every input once found (testdata/fuzz). Longer: make fuzz FUZZ_EXECS=2000000
FUZZ_EXECS ?= 20000
FUZZ_TARGETS := \
	./component:FuzzStreamReader \
	./component/stanza:FuzzParse \
	./component/stanza:FuzzStreamDecoder \
	./component/stanza:FuzzSerialize \
	./component/xep0106:FuzzUnescape \
	./component/xep0106:FuzzRoundTrip \
	./bridges:FuzzUnpackFields \
	./bridges/jidmap:FuzzContactJID \
	./bridges/config:FuzzParse \
	./bridges/vault:FuzzOpen \
	./bridges/store/internal/record:FuzzDecodeAccount \
	./legacy/telegram:FuzzUpdate \
	./legacy/email:FuzzParse \
	./legacy/sms/twilio:FuzzWebhookForm \
	./legacy/sms/kannel:FuzzWebhook \
	./legacy/sms/smpp:FuzzDeliverSM
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz $$pkg $$fn ($(FUZZ_EXECS) inputs)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZ_EXECS)x -timeout 3m $$pkg > $$log 2>&1 \
			|| { cat $$log; echo "fuzz: $$pkg $$fn failed; the input is in $$pkg/testdata/fuzz/$$fn/"; exit 1; }; \
	done

## vulncheck: known vulnerabilities in the dependencies and the code paths that reach them. The
## database is built offline from the golang.org/x/vulndb module (the OSV files the Go team publishes,
## fetched through the module proxy like any module), so vuln.go.dev need not be reachable.
## VULNDB_VERSION pins that snapshot; findings in the standard library are fixed by a newer Go patch
## release, not by us (see docs/security.md).
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
GOVULNCHECK    ?= golang.org/x/vuln/cmd/govulncheck@v1.9.0
vulncheck:
	@set -e; src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	db=$$(mktemp -d); trap 'rm -rf "$$db"' EXIT; \
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$src/data/osv" -out "$$db"; \
	$(GO) run $(GOVULNCHECK) -db "file://$$db" ./...

clean:
	rm -rf bin .demo
