package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/harness"
)

// ResolverResult is scenario 5.
type ResolverResult struct {
	// In-process Go benchmarks on a resolver fed by the real mirror.
	Resolve, PickWeighted, PickRR Micro
	// Kill test: time from killing the dedicated cluster to the first and
	// to every watched service being answered from the public source.
	FirstPublic, AllPublic time.Duration
	Lookups, Failed        int64
	// Sources counts lookups by answer source during the switch.
	Sources map[string]int64
}

// ScenarioResolver (5) benchmarks a cached Resolve and Pick, then kills the
// dedicated cluster under steady lookups. gatewayBench is the output of the
// gateway package's own benchmarks (go test -bench), "" if not run.
func ScenarioResolver(e *Env, t *Table, gatewayBench string) ResolverResult {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	ctrl, _ := controller(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, gateways: []gwConf{{"gw-a", "dc1", e.GwA}}})
	syncUntilComplete(tb, ctrl, "gw-a") // a fresh marker and a complete mirror
	services := e.Services[:min(sz.KillServices, len(e.Services))]
	r := e.startResolver("gw-a", "dc1", e.GwA, len(services))
	waitLocal(tb, r)
	ctx := context.Background()
	for _, s := range services {
		if a, err := r.Resolve(ctx, s); err != nil || a.Empty() || a.Source != gateway.SourceLocal {
			tb.Fatalf("bench: first resolve of %s: %v (source %s, %d instances)", s, err, a.Source, len(a.Instances))
		}
	}

	res := ResolverResult{Sources: map[string]int64{}}
	svc := services[0]
	var bad atomic.Int64
	res.Resolve = microBench(sz.MicroTime, func() {
		if a, err := r.Resolve(ctx, svc); err != nil || a.Empty() {
			bad.Add(1)
		}
	})
	a, _ := r.Resolve(ctx, svc)
	res.PickWeighted = microBench(sz.MicroTime, func() {
		if _, ok := gateway.PickWeighted(a.Instances); !ok {
			bad.Add(1)
		}
	})
	var rr gateway.RoundRobin
	res.PickRR = microBench(sz.MicroTime, func() {
		if _, ok := rr.Pick(a.Instances); !ok {
			bad.Add(1)
		}
	})
	if bad.Load() > 0 {
		tb.Fatalf("bench: %d failed resolves or picks while benchmarking", bad.Load())
	}

	// Kill the dedicated cluster under steady lookups.
	var lookups, failed atomic.Int64
	var srcMu sync.Mutex
	lctx, stopLookups := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for lctx.Err() == nil {
				for _, s := range services {
					a, err := r.Resolve(lctx, s)
					if lctx.Err() != nil {
						return
					}
					lookups.Add(1)
					if err != nil || a.Empty() {
						failed.Add(1)
					}
					srcMu.Lock()
					res.Sources[a.Source.String()]++
					srcMu.Unlock()
				}
				time.Sleep(2 * time.Millisecond) // pacing of the load, not a synchronisation
			}
		})
	}
	killed := time.Now()
	e.GwA.Stop(tb)
	harness.Eventually(tb, 2*time.Minute, func() error {
		public := 0
		for _, s := range services {
			if a, err := r.Resolve(ctx, s); err == nil && a.Source == gateway.SourcePublic {
				public++
			}
		}
		if public > 0 && res.FirstPublic == 0 {
			res.FirstPublic = time.Since(killed)
		}
		if public < len(services) {
			return fmt.Errorf("%d of %d services answered from the public source", public, len(services))
		}
		res.AllPublic = time.Since(killed)
		return nil
	})
	stopLookups()
	wg.Wait()
	res.Lookups, res.Failed = lookups.Load(), failed.Load()

	t.Add(Row{Scenario: "5", Measure: "cached Resolve (in process, real mirror)", Gwsync: benchFig(res.Resolve), Note: "aim ≤ 200 ns, 0 allocs"})
	t.Add(Row{Scenario: "5", Measure: "PickWeighted / RoundRobin.Pick", Gwsync: benchFig(res.PickWeighted) + " / " + benchFig(res.PickRR),
		Note: fmt.Sprintf("%d instances", len(a.Instances))})
	for _, line := range parseGoBench(tb, gatewayBench) {
		t.Add(Row{Scenario: "5", Measure: "gateway package: " + line[0], Gwsync: line[1], Note: "go test -bench -benchmem ./gateway/"})
	}
	t.Add(Row{Scenario: "5", Measure: "dedicated cluster killed: time to answers from the public source (first / all services)",
		Gwsync: fmtDur(res.FirstPublic) + " / " + fmtDur(res.AllPublic),
		Note:   fmt.Sprintf("%d services watched; breaker opens after 3 failures, public poll %s", len(services), gateway.DefaultPublicPollInterval)})
	t.Add(Row{Scenario: "5", Measure: "failed lookups during the switch", Gwsync: fmt.Sprintf("%d of %d", res.Failed, res.Lookups),
		Note: fmt.Sprintf("target 0; answers by source: %s", sourcesString(res.Sources))})
	if res.Failed > 0 {
		t.Note("Scenario 5 misses its target of 0 failed lookups during the switch: %d of %d failed.", res.Failed, res.Lookups)
	}
	t.Note("Scenario 5: while the resolver switches, lookups are answered from memory (last known good) until the local breaker opens and each service's watcher has fetched the public answer; \"failed\" counts errors and empty answers.")
	return res
}

// Micro is an in-process micro-benchmark result.
type Micro struct {
	N           int
	NsPerOp     float64
	AllocsPerOp float64
}

// microBench runs f in rounds of doubling size until a round lasts at
// least d, and reports that round. testing.Benchmark cannot be used here:
// it deadlocks when called from a running benchmark (BenchmarkGwsync).
// Allocations are counted from runtime.MemStats.Mallocs, which includes
// any other goroutine's (the resolver's background watches are idle then).
func microBench(d time.Duration, f func()) Micro {
	for n := 1000; ; n *= 2 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		for range n {
			f()
		}
		el := time.Since(start)
		runtime.ReadMemStats(&after)
		if el >= d || n >= 1<<30 {
			return Micro{N: n, NsPerOp: float64(el.Nanoseconds()) / float64(n), AllocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(n)}
		}
	}
}

func benchFig(m Micro) string {
	return fmt.Sprintf("%.1f ns/op, %.2f allocs/op", m.NsPerOp, m.AllocsPerOp)
}

func sourcesString(m map[string]int64) string {
	var parts []string
	for _, k := range []string{"local", "memory", "public", "snapshot", "none"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

// parseGoBench reads `go test -bench -benchmem` output: for each
// benchmark line, its name and "ns/op, allocs/op".
func parseGoBench(tb testing.TB, path string) [][2]string {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("bench: gateway benchmark results: %v", err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		var ns, allocs string
		for i := 1; i+1 < len(fields); i++ {
			switch fields[i+1] {
			case "ns/op":
				ns = fields[i]
			case "allocs/op":
				allocs = fields[i]
			}
		}
		if ns != "" {
			out = append(out, [2]string{fields[0], ns + " ns/op, " + or(allocs, "?") + " allocs/op"})
		}
	}
	if len(out) == 0 {
		tb.Fatalf("bench: no benchmark lines in %s", path)
	}
	return out
}
