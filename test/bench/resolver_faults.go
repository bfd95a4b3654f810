package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/harness"
)

// FloodResult is a flood of lookups of names nobody registered.
type FloodResult struct {
	Lookups int
	Took    time.Duration
	// Empty answers ("no such service"), errors (the public rate limit
	// refuses at once, ErrPublicBusy) and anything else.
	Empty, Busy, Errors int64
	// Goroutines and heap (after two GCs) before and after; services held
	// (kept fresh) before and after; answers remembered as negative.
	GoroutinesBefore, GoroutinesAfter int
	HeapBefore, HeapAfter             uint64
	HeldBefore, HeldAfter, Negative   int
	// PublicCalls the flood cost the public cluster.
	PublicCalls int
}

// SwitchResult is a local cluster failing under steady lookups: the time
// until the first and until every watched service is answered from the
// public cluster, and the lookups meanwhile.
type SwitchResult struct {
	FirstPublic, AllPublic time.Duration
	Lookups, Failed        int64
	Sources                map[string]int64
}

// flood looks up UnknownLookups random unknown names (16 at a time) on a
// resolver that holds one real service, and measures what stays behind.
func (re *resolverEnv) flood() FloodResult {
	tb := re.TB
	n := re.Sizes.UnknownLookups
	r := re.startResolver("gw-r", "dc1", re.srv.HTTPAddr(), 101)
	defer r.stop()
	waitLocal(tb, r)
	if bad := resolveAll(r, re.cat.services[:1], gateway.SourceLocal, 2); bad != "" {
		tb.Fatalf("bench: flood: %s", bad)
	}
	res := FloodResult{Lookups: n, HeldBefore: r.Status().Services}
	res.GoroutinesBefore, res.HeapBefore = usage()
	re.Proxy.Reset()
	var next, empty, busy, other atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				a, err := r.Resolve(ctx, fmt.Sprintf("unknown-%016x", rand.Uint64()))
				cancel()
				switch {
				case errors.Is(err, gateway.ErrPublicBusy):
					busy.Add(1)
				case err != nil:
					other.Add(1)
				case a.Empty():
					empty.Add(1)
				default:
					other.Add(1) // an unknown name with instances: reported as an error
				}
			}
		})
	}
	wg.Wait()
	res.Took = time.Since(begin)
	res.Empty, res.Busy, res.Errors = empty.Load(), busy.Load(), other.Load()
	res.PublicCalls = re.Proxy.Count(nil)
	res.GoroutinesAfter, res.HeapAfter = usage()
	st := r.Status()
	res.HeldAfter, res.Negative = st.Services, st.Negative
	if bad := resolveAll(r, re.cat.services[:1], gateway.SourceLocal, 2); bad != "" {
		tb.Fatalf("bench: after the flood: %s", bad)
	}
	return res
}

// usage settles the heap and counts the bench process's goroutines.
func usage() (goroutines int, heap uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// hung makes the local cluster hang (a proxy that accepts connections and
// never answers) under steady lookups of KillServices held services.
func (re *resolverEnv) hung() SwitchResult {
	proxy := harness.NewProxy(re.TB, re.srv.HTTPAddr())
	r := re.startResolver("gw-r", "dc1", proxy.Addr(), 102)
	defer r.stop()
	return re.switchOver(r, func() { proxy.SetBlackHole(true) })
}

// killed kills the dedicated cluster under steady lookups (last: the
// cluster does not come back).
func (re *resolverEnv) killed() SwitchResult {
	r := re.startResolver("gw-r", "dc1", re.srv.HTTPAddr(), 103)
	defer r.stop()
	return re.switchOver(r, func() { re.srv.Stop(re.TB) })
}

// switchOver has r hold KillServices services, runs steady lookups of
// them, calls fail and measures the switch to the public cluster.
func (re *resolverEnv) switchOver(r *runningResolver, fail func()) SwitchResult {
	tb := re.TB
	waitLocal(tb, r)
	services := re.cat.services[:min(re.Sizes.KillServices, len(re.cat.services))]
	if bad := resolveAll(r, services, gateway.SourceLocal, 2); bad != "" {
		tb.Fatalf("bench: before the failure: %s", bad)
	}
	lk := startLookups(r, services, 4)
	res := SwitchResult{}
	failed := time.Now()
	fail()
	harness.Eventually(tb, 2*time.Minute, func() error {
		public := 0
		for _, s := range services {
			if a, err := r.Resolve(context.Background(), s); err == nil && a.Source == gateway.SourcePublic {
				public++
			}
		}
		if public > 0 && res.FirstPublic == 0 {
			res.FirstPublic = time.Since(failed)
		}
		if public < len(services) {
			return fmt.Errorf("%d of %d services answered from the public cluster", public, len(services))
		}
		res.AllPublic = time.Since(failed)
		return nil
	})
	res.Lookups, res.Failed, res.Sources = lk.stop()
	return res
}

func resolverRows(e *Env, t *Table, res ResolverResult, gatewayBench string) {
	tb := e.TB
	sz := e.Sizes
	t.Add(Row{Scenario: "5", Measure: fmt.Sprintf("resolver holding %d services: connections to its local cluster (at most / open at the end)", res.Services),
		Gwsync: fmt.Sprintf("%d / %d", res.MaxConns, res.OpenConns), Comparison: fmt.Sprintf("%d (one blocking query per service, previous resolver)", res.Services),
		Note: fmt.Sprintf("%d requests to the local cluster over the first lookups and %s; target: a handful", res.LocalReqs, fmtDur(res.Window))})
	t.Add(Row{Scenario: "5", Measure: fmt.Sprintf("resolver holding %d services: lookups over %s (failed, answered locally)", res.Services, fmtDur(res.Window)),
		Gwsync: fmt.Sprintf("%d (%d failed, %.1f%% local)", res.Lookups, res.Failed, pct(res.Sources["local"], res.Lookups)),
		Note:   "target 0 failed, 100% local; by source: " + sourcesString(res.Sources)})
	pr, pb := percentiles(res.Resolver), percentiles(res.Blocking)
	t.Add(Row{Scenario: "5", Measure: "change to one service visible through the resolver, p50 / p95 / p99", Gwsync: pr.String(),
		Comparison: pb.String() + " (blocking query on the service in the dedicated cluster)", Ratio: "p50 " + ratio(float64(pr[0]), float64(pb[0])) + ", p99 " + ratio(float64(pr[2]), float64(pb[2])),
		Note: fmt.Sprintf("%d check flips on the public cluster, timed from the write; both include the controller's event path", len(res.Resolver))})
	t.Add(Row{Scenario: "5", Measure: fmt.Sprintf("cached Resolve (in process, %d services held)", res.Services), Gwsync: benchFig(res.Resolve), Note: "target ≤ 200 ns, 0 allocs"})
	t.Add(Row{Scenario: "5", Measure: "PickWeighted / RoundRobin.Pick", Gwsync: benchFig(res.PickWeighted) + " / " + benchFig(res.PickRR), Note: "2 instances"})
	for _, line := range parseGoBench(tb, gatewayBench) {
		t.Add(Row{Scenario: "5", Measure: "gateway package: " + line[0], Gwsync: line[1], Note: "go test -bench -benchmem ./gateway/"})
	}
	f := res.Flood
	t.Add(Row{Scenario: "5", Measure: fmt.Sprintf("%d lookups of random unknown names: goroutines / heap / services held, before → after", f.Lookups),
		Gwsync: fmt.Sprintf("%d → %d / %s → %s / %d → %d", f.GoroutinesBefore, f.GoroutinesAfter, fmtMiB(float64(f.HeapBefore)), fmtMiB(float64(f.HeapAfter)), f.HeldBefore, f.HeldAfter),
		Note: fmt.Sprintf("in %s: %d answered empty, %d refused by the public rate limit, %d other errors; %d negative answers remembered; %d public requests (bench process figures)",
			fmtDur(f.Took), f.Empty, f.Busy, f.Errors, f.Negative, f.PublicCalls)})
	for _, s := range []struct {
		what string
		r    SwitchResult
	}{{"local cluster hangs (accepts, never answers)", res.Hung}, {"local cluster killed", res.Killed}} {
		t.Add(Row{Scenario: "5", Measure: s.what + ": time to answers from the public cluster (first / every service)", Gwsync: fmtDur(s.r.FirstPublic) + " / " + fmtDur(s.r.AllPublic),
			Note: fmt.Sprintf("target within 5 s; %d services held; lookups meanwhile %d, failed %d (target 0); by source: %s",
				min(sz.KillServices, res.Services), s.r.Lookups, s.r.Failed, sourcesString(s.r.Sources))})
		if s.r.Failed > 0 || s.r.AllPublic > 5*time.Second {
			t.Note("Scenario 5 (%s) misses a target: %d of %d lookups failed; every service answered from the public cluster after %s (target 5 s).", s.what, s.r.Failed, s.r.Lookups, fmtDur(s.r.AllPublic))
		}
	}
	t.Note("Scenario 5: %d services with 2 instances each in dc1, mirrored by a controller (event path, default schedule) into gw-r's dedicated cluster; each resolver is built as `gwsync gateway` builds it (gateway defaults, 64-connection clients) and runs in the bench process. Connections are counted by a proxy in front of the local cluster. Lookups: 4 workers resolve random held services, 10,000 a second each. Changes flip one instance's check on the public dc1 server, one at a time; the comparison is a blocking `health/service` query on the changed service in the dedicated cluster, opened before the write, as the previous resolver held one per service. Hang: a proxy that accepts connections and never answers; kill: the dedicated Consul is killed.", sz.ResolverServices)
	resolverChart(e, res)
}
