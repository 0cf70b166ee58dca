# Rampart's developer entry points. `make test` is what CI runs.
GO            ?= go
GOLANGCI_LINT_VERSION ?= v2.6.2
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
FUZZTIME      ?= 10s
BENCHTIME     ?= 1s
BENCHCOUNT    ?= 6

.PHONY: test test-deps check fmt vet lint bench bench-proxy fuzz build tidy

build:
	$(GO) build ./...

# tidy tidies both modules: bench/libcompare replaces the main module, so a
# dependency added there must be reflected in its go.sum too (vet fails
# otherwise).
tidy:
	GOFLAGS= $(GO) mod tidy
	cd bench/libcompare && GOFLAGS= $(GO) mod tidy

# test installs what the tests need (apt packages such as etcd-server or
# redis-server, when a test needs them) and runs every test with the race
# detector, in random order, without the test cache.
test: test-deps
	$(GO) test -race -shuffle=on -count=1 $$($(GO) list ./... | grep -v '/test/chaos$$')
	@# The chaos suite holds latency bounds (1 s ejection, 2x p99 with
	@# hedging) on real processes: it runs alone, not beside other packages.
	$(GO) test -race -count=1 -p 1 ./test/chaos/
	@# Allocation budgets (TestXxxAllocat*) build without the race detector,
	@# which allocates on its own; run them in a pass of their own.
	$(GO) test -count=1 -run 'Allocat' ./...

test-deps:
	@scripts/test-deps.sh

check: fmt vet lint test

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	cd bench/libcompare && $(GO) vet ./...

lint: $(GOBIN)/golangci-lint
	$(GOBIN)/golangci-lint run ./...

$(GOBIN)/golangci-lint:
	GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

# bench runs the side-by-side library comparison (bench/libcompare, its own
# module) and prints a benchstat table.
bench:
	@scripts/libcompare.sh $(BENCHTIME) $(BENCHCOUNT)

# bench-proxy runs Rampart, nginx and HAProxy (and the opt-in gofloor) side by side under wrk
# (installs them with apt when missing); see bench/proxy/README.md.
bench-proxy:
	@bench/proxy/run.sh

# fuzz runs every native fuzz target for FUZZTIME each.
fuzz:
	@scripts/fuzz-all.sh $(FUZZTIME)
