# chelsio-sriov: SR-IOV networking for Kubernetes pods on Chelsio T4/T5/T6 adapters.
# `make help` lists the targets. Targets that touch network namespaces need root.

GO        ?= go
BIN       := $(CURDIR)/bin
# What the binaries and images are stamped with (pkg/version): the version, the
# commit, and the commit's time, not the build's, so that building a commit twice
# gives the same bytes. Each can be given: make release VERSION=v1.2.0. (The second
# line of each pair runs git once instead of at every use.)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VERSION   := $(VERSION)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
COMMIT    := $(COMMIT)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
SOURCE_DATE_EPOCH := $(SOURCE_DATE_EPOCH)
DATE      ?= $(if $(SOURCE_DATE_EPOCH),$(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ 2>/dev/null))
DATE      := $(DATE)
STAMP     := github.com/chelsio-k8s/chelsio-sriov/pkg/version
LDFLAGS   := -s -w -X $(STAMP).Version=$(VERSION) -X $(STAMP).Commit=$(COMMIT) -X $(STAMP).Date=$(DATE)
GOLANGCI  := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
TOOLS     := $(BIN)/tools
FUZZTIME  ?= 30s
TESTFLAGS ?=
# Every package whose tests hold a fuzz target; `make fuzz` runs each target in
# turn for FUZZTIME (a duration, or a count of executions such as 1000000x), with
# FUZZPARALLEL workers (default: one per CPU). A duration can end in a spurious
# "context deadline exceeded" on Go 1.26 (golang/go#75804): make fuzz reports it
# and goes on when no failing input was written; a count never meets it.
FUZZPKGS  ?= $(sort $(patsubst %/,./%,$(dir $(shell grep -rl --include='*_test.go' '^func Fuzz' pkg cmd plugins 2>/dev/null))))
FUZZPARALLEL ?=
K         ?= 50
N         ?= 16,64
BENCHTIME ?= 1s

.PHONY: help build test test-unit lint demo demo-dra bench fuzz stress clean cni-plugins image image-local image-archive release

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build the binaries into bin/ (static, CGO off)
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/... $(dir $(wildcard ./plugins/*/main.go))

test: ## vet, then every test with the race detector (root runs the privileged ones too)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m $(TESTFLAGS) ./...

test-unit: ## the tests that need no root, quickly
	$(GO) test -count=1 -short ./...

lint: ## gofmt, go vet and golangci-lint (installed into bin/tools on first use)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'run gofmt -w on the files above'; exit 1; }
	$(GO) vet ./...
	@test -x $(TOOLS)/golangci-lint || GOBIN=$(TOOLS) $(GO) install $(GOLANGCI)
	$(TOOLS)/golangci-lint run ./...

CNIBIN    := $(BIN)/cni
CNI_PLUGINS_VERSION := v1.9.1

# whereabouts (the reference NAD's IPAM) is built from tools/whereabouts, a module
# of its own: its go.mod pins an older Kubernetes client and a replace, which
# go install pkg@version refuses.
cni-plugins: ## install the IPAM plugins (host-local, whereabouts) from the module proxy into bin/cni
	@test -x $(CNIBIN)/host-local || GOBIN=$(CNIBIN) CGO_ENABLED=0 $(GO) install github.com/containernetworking/plugins/plugins/ipam/host-local@$(CNI_PLUGINS_VERSION)
	@test -x $(CNIBIN)/whereabouts || { cd tools/whereabouts && CGO_ENABLED=0 $(GO) build -trimpath -o $(CNIBIN)/whereabouts github.com/k8snetworkplumbingwg/whereabouts/cmd; }

demo: build cni-plugins ## the reference flow on an emulated two-worker node (root)
	$(GO) build -o $(BIN)/demo ./test/demo
	$(BIN)/demo -bin $(BIN) $(DEMOFLAGS)

demo-dra: build cni-plugins ## the reference flow with a DRA claim per worker instead of the extended resource (root)
	$(GO) build -o $(BIN)/demo ./test/demo
	$(BIN)/demo -bin $(BIN) -dra $(DEMOFLAGS)

bench: build cni-plugins ## Go benchmarks of the hot paths, then (root) CNI vs floor and host-device, N-way, device plugin; K=50 N=16,64
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./pkg/...
	$(GO) build -o $(BIN)/floor ./test/bench/floor
	$(GO) build -o $(BIN)/cnibench ./test/bench/cnibench
	$(GO) build -o $(BIN)/dpbench ./test/bench/dpbench
	$(GO) build -o $(BIN)/report ./test/bench/report
	GO=$(GO) BIN=$(BIN) K=$(K) N=$(N) CNI_PLUGINS_VERSION=$(CNI_PLUGINS_VERSION) ./scripts/bench.sh

fuzz: ## run every fuzz target for FUZZTIME (default 30s, or e.g. 1000000x) each; prints each target's executions
	@sum=$$(mktemp); out=$$(mktemp); rcf=$$(mktemp); trap 'rm -f $$sum $$out $$rcf' EXIT; \
	printf '%-20s %-18s %12s %9s %7s\n' package target executions fuzzing wall >$$sum; \
	for pkg in $(FUZZPKGS); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    start=$$(date +%s); \
	    { $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $(if $(FUZZPARALLEL),-parallel $(FUZZPARALLEL)) $$pkg; echo $$? >$$rcf; } 2>&1 | tee $$out; \
	    last=$$(sed -n 's/^fuzz: elapsed: \([^,]*\), execs: \([0-9]*\) .*/\2 \1/p' $$out | tail -n 1); \
	    rc=$$(cat $$rcf); note=; \
	    if [ "$$rc" != 0 ] && ! grep -q 'Failing input written' $$out && grep -qx '    context deadline exceeded' $$out; then \
	      rc=0; note=' deadline race'; \
	      echo "== $$pkg $$target: stopped at the deadline by Go's fuzzing coordinator (golang/go#75804), no failing input; FUZZTIME=<n>x avoids it"; \
	    fi; \
	    printf '%-20s %-18s %12s %9s %6ss%s\n' $$pkg $$target $${last:-- -} $$(( $$(date +%s) - start )) "$$note" >>$$sum; \
	    if [ "$$rc" != 0 ]; then echo "== $$pkg $$target FAILED"; cat $$sum; exit 1; fi; \
	  done; \
	done; \
	echo "== fuzz summary"; cat $$sum

STRESS    ?= 10m

stress: ## (root) the stress tests for STRESS (default 10m) each, under -race: 64 runtimes on 64 VFs with faults
	CHELSIO_STRESS_DURATION=$(STRESS) $(GO) test -race -count=1 -timeout 0 -v -run 'Stress' ./test/e2e/

# The image: IMAGE:TAG, built by CONTAINER_TOOL, the first of buildah, podman and
# docker on PATH unless given. buildah and podman get --timestamp, docker (BuildKit)
# SOURCE_DATE_EPOCH, so that the image of a commit is the same every time.
IMAGE     ?= ghcr.io/chelsio-k8s/chelsio-sriov
TAG       ?= $(VERSION)
CONTAINER_TOOL ?= $(firstword $(foreach t,buildah podman docker,$(shell command -v $(t) 2>/dev/null)))
DIST      ?= $(CURDIR)/dist
RELEASE_ENV = VERSION='$(VERSION)' IMAGE='$(IMAGE)' TAG='$(TAG)' OUT='$(DIST)/$(VERSION)'
IMAGE_BUILD = $(CONTAINER_TOOL) build -t $(IMAGE):$(TAG) \
	--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) \
	$(if $(SOURCE_DATE_EPOCH),$(if $(filter docker,$(notdir $(CONTAINER_TOOL))),--build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH),--timestamp $(SOURCE_DATE_EPOCH)))

image: ## the release image IMAGE:TAG (default: ghcr.io/chelsio-k8s/chelsio-sriov:VERSION) from images/Dockerfile; needs a registry
	@test -n "$(CONTAINER_TOOL)" || { echo 'make image: no buildah, podman or docker on PATH (or give CONTAINER_TOOL=)'; exit 1; }
	$(IMAGE_BUILD) -f images/Dockerfile .

image-local: build ## the same image from the binaries of make build, offline (images/Dockerfile.local)
	@test -n "$(CONTAINER_TOOL)" || { echo 'make image-local: no buildah, podman or docker on PATH (or give CONTAINER_TOOL=)'; exit 1; }
	@printf '*\n!chelsio-sriov\n!chelsio-sriov-dp\n!chelsio-sriov-dra\n!chelsio-vf\n' >$(BIN)/.dockerignore
	$(IMAGE_BUILD) -f images/Dockerfile.local $(BIN)

image-archive: ## save IMAGE:TAG as dist/VERSION/chelsio-sriov-image.tar, for ctr -n k8s.io images import on a node
	GO='$(GO)' CONTAINER_TOOL='$(CONTAINER_TOOL)' $(RELEASE_ENV) ./scripts/release.sh check archive sums

release: ## dist/VERSION/: static binaries, the manifests rendered with IMAGE:TAG, SHA256SUMS
	$(RELEASE_ENV) ./scripts/release.sh check
	rm -rf '$(DIST)/$(VERSION)'
	$(MAKE) --no-print-directory build BIN='$(DIST)/$(VERSION)' VERSION='$(VERSION)' COMMIT='$(COMMIT)' DATE='$(DATE)'
	GO='$(GO)' $(RELEASE_ENV) ./scripts/release.sh manifests sums

clean: ## remove bin/ and dist/
	rm -rf $(BIN) $(DIST)
