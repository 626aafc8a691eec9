# podsb — build, test, benchmark. Run `make help` for the targets.
GO ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
TESTFLAGS ?=
BIN := bin/podsb
# A static binary starts faster (no dynamic loader) and runs anywhere.
CGO ?= 0
# The entry point: podsb exec's C part before the Go runtime (nsenter/fastexec.go).
LDFLAGS ?= -E=podsb/nsenter.fastEntry

.PHONY: all build deps test unit integration bench lint demo pause clean help

all: build

build: ## Build bin/podsb
	CGO_ENABLED=$(CGO) $(GO) build -ldflags=$(LDFLAGS) -o $(BIN) ./cmd/podsb

deps: ## Install the Debian packages the tests drive, if missing (scripts/deps.sh; needs root)
	sh scripts/deps.sh

test: deps ## Run every test: unit and root-only integration (needs root); installs missing packages first
	$(GO) test -count=1 -race $(TESTFLAGS) ./...

unit: ## Run the tests that need no root
	$(GO) test -count=1 -race $(TESTFLAGS) ./cmd/... ./sandbox/... ./rootfs/... ./reaper/... ./nsenter/... ./network/... ./internal/...

integration: deps ## Run the root-only end-to-end tests of the built binary and the library
	$(GO) test -count=1 $(TESTFLAGS) ./integration/...

# The benchmarks' state roots are temporary directories: on a tmpfs, as
# /run (podsb's default root) is on most systems. BENCH_TMPDIR=/tmp (or any
# directory) measures with the state on that file system instead.
BENCH_TMPDIR ?= /dev/shm

bench: ## Run the benchmarks against runc, crun and unshare (needs root; PODSB_BENCH_ROUNDS=N, BENCH_TMPDIR=DIR)
	TMPDIR=$(BENCH_TMPDIR) $(GO) test -count=1 -run '^$$' -bench . -benchtime=1x -timeout 60m -v ./integration/

lint: ## gofmt, go vet, staticcheck, and the package dependency rules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@for leaf in $$($(GO) list ./... | grep -E '^podsb/(nsenter|reaper|rootfs|network)$$'); do \
		bad=$$($(GO) list -deps $$leaf | grep -E '^podsb/(sandbox|cmd|nsenter|reaper|rootfs|network)' | grep -vx "$$leaf"); \
		if [ -n "$$bad" ]; then echo "leaf package $$leaf imports $$bad"; exit 1; fi; \
	done
	@if $(GO) list -deps ./sandbox | grep -q '^podsb/cmd'; then echo "sandbox imports cmd"; exit 1; fi

pause: ## Rebuild the embedded pause program from reaper/pause/pause.c (needs gcc)
	sh reaper/pause/build.sh

demo: build ## Create a pod with the default root, look inside, remove it (needs root)
	@set -e; root=$$(mktemp -d); p="$(BIN) --root $$root"; trap '$$p rm -f --all >/dev/null; rm -rf "$$root"' EXIT; \
	echo '$$ podsb create --network none demo'; $$p create --network none demo; \
	echo '$$ podsb exec -d demo -- sleep 1000'; $$p exec -d demo -- sleep 1000; \
	echo '$$ podsb ps'; $$p ps; \
	echo '$$ podsb top demo'; $$p top demo; \
	echo '$$ podsb exec demo -- sh -c "hostname; ls /; cat /proc/1/comm; ip -brief addr"'; \
	$$p exec demo -- /bin/sh -c 'echo "hostname: $$(hostname)"; echo "root: $$(ls / | tr "\n" " ")"; echo "PID 1: $$(cat /proc/1/comm)"; ip -brief addr'; \
	echo '$$ ip netns list'; ip netns list | grep demo; \
	echo '$$ podsb rm demo'; $$p rm demo

clean: ## Remove built files
	rm -rf bin

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
