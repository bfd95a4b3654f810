# make bench: gwsync's benchmarks against real Consul (test/bench). Runs the
# gateway package's Go benchmarks and the HA takeover benchmark, then every
# other scenario at full size once, writes docs/benchmarks.md and draws one
# SVG chart per scenario beside it (test/bench/charts, a module of its own
# so the plotting library never enters the root module). About 40 minutes
# on 2 cores; give it an otherwise idle machine.
#
# BENCH_LOAD_WINDOW=60s measures scenario 1 for the issue's full minute per
# point; BENCH_WINDOW sets the 60 s windows of scenarios 5, 7 and 8;
# BENCH_SCALE lists scenario 4's catalog sizes (BENCH_SCALE=1000 for a
# quick run: scenarios 7 and 8 then run at 1000 services only);
# BENCH_REMARK adds a sentence to the document's header; BENCH_TAKEOVER=0
# leaves out the takeover benchmark (scenario 9, about 7 minutes);
# BENCH_PROFILE=dir writes CPU profiles of the controller during scenario
# 4 there (initial-<n>.pprof: the initial mirror's first 60 s;
# steady-<n>.pprof: the last steady round; heap-initial-<n>.pprof: the
# heap halfway through that CPU profile; heap-<n>.pprof: the heap after a
# forced GC at the end), for `go tool pprof`. `make bench-scale` runs
# scenario 4 alone.
BENCH_LOAD_WINDOW ?= 20s
BENCH_WINDOW      ?= 60s
BENCH_SCALE       ?= 1000,5000,10000
BENCH_REMARK      ?=
BENCH_TAKEOVER    ?= 1
BENCH_PROFILE     ?=
BENCH_OUT         ?= $(CURDIR)/docs/benchmarks.md
BENCH_CHARTS      := $(BIN)/bench-charts.json
ifeq ($(BENCH_TAKEOVER),1)
BENCH_TAKEOVER_OUT := $(BIN)/bench-takeover.txt
endif

.PHONY: bench bench-scale test-bench-charts

bench: $(CONSUL)
	@mkdir -p $(BIN)
	$(GO) test -count=1 -run '^$$' -bench 'Resolver_ResolveCached|Pick_' -benchmem ./gateway/ > $(BIN)/bench-gateway.txt
	@cat $(BIN)/bench-gateway.txt
ifeq ($(BENCH_TAKEOVER),1)
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkTakeover$$' -timeout 30m ./test/bench/ > $(BENCH_TAKEOVER_OUT) 2>&1 || \
		echo "BenchmarkTakeover failed: the document notes it ($(BENCH_TAKEOVER_OUT))"
	@grep -E 'kill [0-9]+:|takeover over|FAIL' $(BENCH_TAKEOVER_OUT) || true
endif
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkGwsync$$' -timeout 90m ./test/bench/ \
		-args -bench.out=$(BENCH_OUT) -bench.charts=$(BENCH_CHARTS) -bench.gateway=$(BIN)/bench-gateway.txt \
		-bench.load-window=$(BENCH_LOAD_WINDOW) -bench.window=$(BENCH_WINDOW) -bench.scale=$(BENCH_SCALE) \
		-bench.takeover=$(BENCH_TAKEOVER_OUT) -bench.remark="$(BENCH_REMARK)" -bench.profile="$(BENCH_PROFILE)"
	cd test/bench/charts && $(GO) run -mod=mod . -in $(BENCH_CHARTS) -out $(dir $(BENCH_OUT))

# Scenario 4 alone (initial mirror, steady cycles, memory) at BENCH_SCALE,
# printed, not written to docs/: for profiling with BENCH_PROFILE=dir
# (CPU profiles as above, and heap-<n>.pprof after a forced GC).
bench-scale: $(CONSUL)
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkScale$$' -timeout 90m ./test/bench/ \
		-args -bench.scale=$(BENCH_SCALE) -bench.remark="$(BENCH_REMARK)" -bench.profile="$(BENCH_PROFILE)"

# The chart renderer's own tests (its module is outside `go test ./...`);
# the root test recipe runs them with the deploy module's.
test-bench-charts:
	cd test/bench/charts && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -count=1 ./...

TEST_DEPLOY += test-bench-charts
