# podsb — build, test, benchmark. Run `make help` for the targets.
GO ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
TESTFLAGS ?=
BIN := bin/podsb
# The CRI server is a binary of its own, so that podsb does not link grpc
# (docs/cri.md); podsb cri executes it.
CRI_BIN = $(dir $(BIN))podsb-cri
# So is image pull and import (package image/fetch: go-containerregistry,
# net/http, the decompressors); podsb image pull and import execute it.
IMAGE_BIN = $(dir $(BIN))podsb-image
# And the per-container log writer that podsb-cri starts (package crilog):
# a process that outlives podsb-cri, linking only the standard library and
# golang.org/x/sys.
LOGGER_BIN = $(dir $(BIN))podsb-logger
# Where tools the tests drive (crictl, critest) are built once and kept.
TOOLS_DIR ?= /var/cache/podsb-tools
CRICTL_VERSION := v1.37.0
# A static binary starts faster (no dynamic loader) and runs anywhere.
CGO ?= 0
# What podsb version prints: the commit, and whether the fast path is linked.
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
VERSION_LDFLAGS := -X main.commit=$(COMMIT)

# Who imports whom: each package with the podsb packages it may import
# (go list's Imports, checked by lint). The C parts have edges go list
# cannot see: CEDGES, checked from their #include lines. Besides those,
# fastexec's C includes reaper's pause image (fastexec/c/build.sh) and
# reads sandbox's files at run time: the join record and the namespace
# handles (fastexec/doc.go names them).
EDGES := cmd/podsb:sandbox,fastexec,image cmd/podsb-image:image,image/fetch cmd/podsb-cri:cri cri:sandbox,image,image/fetch,crilog,rootfs,nsenter,cni cni: \
	cmd/podsb-logger:crilog crilog: image:internal/errclass,rootfs image/fetch:image,internal/errclass sandbox:rootfs,network,reaper,nsenter,internal/setup,internal/errclass \
	rootfs:internal/setup,internal/errclass network:internal/errclass nsenter: reaper: fastexec: \
	internal/setup: internal/setup/gen:internal/setup,sandbox internal/errclass: internal/testenv: integration: integration/internal/criregistry: integration/internal/critesttable:
CEDGES := fastexec:internal/setup reaper:internal/setup
# What podsb and the lean image store it runs images through must not link: the pull and import side's registry client, HTTP,
# decompressors and TOML live in image/fetch (docs/performance.md).
HEAVY := go-containerregistry|go-digest|^net/http$$|klauspost|go-toml

.PHONY: all build tools deps test unit integration critest bench benchcri lint demo pause clean help

all: build

# With a C compiler, podsb exec's fast path (package fastexec) is built
# from source and is the binary's entry point; without one, the same podsb
# without it.
build: ## Build bin/podsb (with exec's fast path if there is a C compiler), bin/podsb-cri, bin/podsb-logger and bin/podsb-image
	CGO_ENABLED=$(CGO) $(GO) build -ldflags="$(VERSION_LDFLAGS)" -o $(CRI_BIN) ./cmd/podsb-cri
	CGO_ENABLED=$(CGO) $(GO) build -o $(LOGGER_BIN) ./cmd/podsb-logger
	CGO_ENABLED=$(CGO) $(GO) build -ldflags="$(VERSION_LDFLAGS)" -o $(IMAGE_BIN) ./cmd/podsb-image
	@rc=2; if [ "$$($(GO) env GOARCH)" = amd64 ]; then sh fastexec/c/build.sh && rc=0 || rc=$$?; fi; \
	if [ $$rc = 0 ]; then \
		set -x; CGO_ENABLED=$(CGO) $(GO) build -tags fastexec -ldflags="-E=github.com/podsb/podsb/fastexec.entry -X main.fastPath=linked $(VERSION_LDFLAGS)" -o $(BIN) ./cmd/podsb; \
	elif [ $$rc = 2 ]; then \
		echo "make build: no C compiler for amd64: $(BIN) without exec's fast path (podsb exec starts in Go)"; \
		set -x; CGO_ENABLED=$(CGO) $(GO) build -ldflags="$(VERSION_LDFLAGS)" -o $(BIN) ./cmd/podsb; \
	else exit $$rc; fi

tools: ## Build crictl and critest $(CRICTL_VERSION) into $(TOOLS_DIR) once (scripts/cri-tools.sh; the CRI tests drive them)
	TOOLS_DIR=$(TOOLS_DIR) CRI_TOOLS_VERSION=$(CRICTL_VERSION) GO=$(GO) sh scripts/cri-tools.sh

deps: ## Install the Debian packages the tests drive, if missing (scripts/deps.sh; needs root)
	sh scripts/deps.sh

# The critest tag adds TestCritest: critest's groups of issue 14 against a
# podsb cri (integration/critest_run_test.go).
test: deps ## Run every test: unit, root-only integration and critest (needs root); installs missing packages first
	$(GO) test -count=1 -race -tags critest -timeout 45m $(TESTFLAGS) ./...

unit: ## Run the tests that need no root
	$(GO) test -count=1 -race $(TESTFLAGS) ./cmd/... ./sandbox/... ./rootfs/... ./reaper/... ./nsenter/... ./network/... ./internal/... ./fastexec/... ./image/... ./crilog/... ./integration/internal/...

integration: deps ## Run the root-only end-to-end tests of the built binary and the library
	$(GO) test -count=1 $(TESTFLAGS) ./integration/...

# critest's groups of issue 14 alone (integration/critest_run_test.go,
# build tag critest; make test runs it too). Its log and JSON and JUnit
# reports go to CRITEST_REPORTS, if set.
CRITEST_REPORTS ?=

critest: deps tools ## Run critest $(CRICTL_VERSION) against podsb cri, images from a local registry (needs root; CRITEST_REPORTS=DIR keeps its reports)
	PODSB_INTEGRATION=1 PODSB_CRITEST_REPORT_DIR=$(CRITEST_REPORTS) $(GO) test -tags critest -count=1 -timeout 30m -run '^TestCritest$$' -v ./integration/

# The benchmarks' state roots are temporary directories: on a tmpfs, as
# /run (podsb's default root) is on most systems. BENCH_TMPDIR=/tmp (or any
# directory) measures with the state on that file system instead.
BENCH_TMPDIR ?= /dev/shm

bench: ## Run the benchmarks against runc, crun, unshare, podman, skopeo, umoci and containerd (needs root; PODSB_BENCH_ROUNDS=N, BENCH_TMPDIR=DIR)
	TMPDIR=$(BENCH_TMPDIR) $(GO) test -count=1 -run '^$$' -bench . -benchtime=1x -timeout 60m -v ./integration/

# crictl and critest are built by make tools. BENCHCRI picks
# some of them (BenchmarkCRILifecycle, BenchmarkCRIMemory,
# BenchmarkCRICritestPasses).
BENCHCRI ?= BenchmarkCRI
benchcri: ## Run only the CRI benchmarks: podsb cri against a private containerd (needs root, critest; PODSB_BENCH_ROUNDS=N, PODSB_BENCH_PODS=N, BENCHCRI=NAME)
	TMPDIR=$(BENCH_TMPDIR) $(GO) test -count=1 -run '^$$' -bench '$(BENCHCRI)' -benchtime=1x -timeout 40m -v ./integration/

lint: ## gofmt, go vet, staticcheck, and the package dependency rules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) vet -tags fastexec ./fastexec
	$(GO) vet -tags critest ./integration
	$(STATICCHECK) -tags critest ./integration
	@$(GO) list -f '{{.ImportPath}} {{join .Imports " "}}' ./... | awk -v edges="$(EDGES)" ' \
		BEGIN { n = split(edges, e, " "); for (i = 1; i <= n; i++) { split(e[i], kv, ":"); p = "github.com/podsb/podsb/" kv[1]; known[p] = 1; \
			m = split(kv[2], d, ","); for (j = 1; j <= m; j++) ok[p " github.com/podsb/podsb/" d[j]] = 1 } } \
		!known[$$1] { print "lint: package " $$1 " has no entry in the Makefile'"'"'s EDGES"; bad = 1 } \
		{ for (i = 2; i <= NF; i++) if (index($$i, "github.com/podsb/podsb/") == 1 && !ok[$$1 " " $$i]) { print "lint: " $$1 " imports " $$i ": not in EDGES"; bad = 1 } } \
		END { exit bad }'
	@bad=$$($(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/podsb-logger | grep -vE '^(github.com/podsb/podsb/(cmd/podsb-logger|crilog)|golang.org/x/sys/.*)$$'); \
		if [ -n "$$bad" ]; then echo "lint: podsb-logger links" $$bad "(only the standard library and golang.org/x/sys)"; exit 1; fi
	@bad=$$($(GO) list -deps ./image ./cmd/podsb | grep -E "$(HEAVY)"); if [ -n "$$bad" ]; then echo "lint: podsb or package image links" $$bad "(only image/fetch and podsb-image may)"; exit 1; fi
	@for f in $$(git ls-files '*.c'); do pkg=$$(dirname $$(dirname $$f)); \
		for inc in $$(sed -n 's/^#include "\([^"]*\)".*/\1/p' $$f); do \
			dep=$$(dirname $$(realpath --relative-to=. $$(dirname $$f)/$$inc)); \
			echo " $(CEDGES) " | tr ' ' '\n' | grep -qx "$$pkg:\(.*,\)*$$dep\(,.*\)*" || \
				{ echo "lint: $$f includes $$inc: $$pkg -> $$dep is not in CEDGES"; exit 1; }; \
		done; \
	done

pause: ## Rebuild the embedded pause image from reaper/pause/pause.c (with the compiler in reaper/pause/COMPILER)
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
	rm -rf bin fastexec/blob_amd64.s

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'
