# gwsync — build, test, demo, bench. Needs only Go: Consul and every tool the
# tests use are built from the Go module proxy into bin/ when missing.
GO        ?= go
BIN       := $(CURDIR)/bin
CONSUL    := $(BIN)/consul
GWSYNC    := $(BIN)/gwsync
export PATH := $(BIN):$(PATH)
export GWSYNC_CONSUL_BIN := $(CONSUL)

# Tools other parts of the tree need for their tests (helm, …) are appended
# to TEST_TOOLS by their own make fragments.
TEST_TOOLS :=
-include deploy/deploy.mk
-include demo.mk
-include bench.mk

.PHONY: all build consul test test-unit vet fmt clean

all: build

build:
	$(GO) build -o $(GWSYNC) ./cmd/gwsync

# Consul v1.21.0, built from the pinned module under test/consulbin (its
# go.sum is committed: some of Consul's dependencies are not in the public
# checksum database). Only built when missing; about 5 minutes cold on 2 cores.
consul: $(CONSUL)
$(CONSUL): test/consulbin/go.mod test/consulbin/go.sum
	@mkdir -p $(BIN)
	cd test/consulbin && $(GO) build -o $(CONSUL) github.com/hashicorp/consul
	@$(CONSUL) version | head -1

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

# Unit and fuzz-seed tests only: under -short every test that starts real
# Consul skips, so this needs no Consul binary.
test-unit:
	$(GO) test -count=1 -short ./...

# Everything CI runs: vet, the root module's tests (unit, fuzz seeds, real-
# Consul e2e, demo smoke test), then the deploy module's tests (chart,
# rules, dashboard, image).
test: $(CONSUL) $(TEST_TOOLS) vet
	$(GO) test -count=1 -timeout 18m ./...
	$(MAKE) $(TEST_DEPLOY)

clean:
	rm -rf $(BIN) dist .demo
