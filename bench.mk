# make bench: gwsync's benchmarks against real Consul (test/bench). Runs the
# gateway package's Go benchmarks, then every scenario at full size once,
# prints one markdown table and writes it to docs/benchmarks.md. About 15-30
# minutes on 2 cores; give it an otherwise idle machine.
# BENCH_LOAD_WINDOW=60s measures scenario 1 for the issue's full minute per point.
BENCH_LOAD_WINDOW ?= 20s
BENCH_OUT         ?= $(CURDIR)/docs/benchmarks.md

.PHONY: bench
bench: $(CONSUL)
	@mkdir -p $(BIN)
	$(GO) test -count=1 -run '^$$' -bench 'Resolver_ResolveCached$$|Pick_' -benchmem ./gateway/ > $(BIN)/bench-gateway.txt
	@cat $(BIN)/bench-gateway.txt
	$(GO) test -count=1 -run '^$$' -bench '^BenchmarkGwsync$$' -timeout 60m ./test/bench/ \
		-args -bench.out=$(BENCH_OUT) -bench.gateway=$(BIN)/bench-gateway.txt -bench.load-window=$(BENCH_LOAD_WINDOW)
