package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/bench/chartspec"
	"github.com/gwsync/gwsync/test/harness"
)

// ResolverResult is scenario 5.
type ResolverResult struct {
	// A resolver holding Services services: connections to its local
	// cluster (at most, and open at the end) and requests it sent there,
	// lookups over Window (failed, by source), and the propagation of
	// changes to it and to a blocking query on the service (the previous
	// resolver's per-service watch).
	Services                       int
	MaxConns, OpenConns, LocalReqs int
	Window                         time.Duration
	Lookups, Failed                int64
	Sources                        map[string]int64
	Resolver, Blocking             []time.Duration
	// In-process micro-benchmarks on that resolver.
	Resolve, PickWeighted, PickRR Micro
	Flood                         FloodResult
	Hung, Killed                  SwitchResult
}

// resolverEnv is scenario 5's setup: ResolverServices services with two
// instances each in dc1, mirrored by an in-process controller (event
// path, default schedule) into gateway gw-r's dedicated cluster.
type resolverEnv struct {
	*Env
	cat  *catalog
	srv  *harness.Server
	ctrl *inProcess
}

// ScenarioResolver (5) measures the resolver library at scale (issue 11):
// connections and lookups while it holds ResolverServices services, how
// fast a change reaches it, a flood of unknown names, a local cluster that
// hangs and one that dies. gatewayBench is the output of the gateway
// package's own benchmarks (go test -bench), "" if not run.
func ScenarioResolver(e *Env, t *Table, gatewayBench string) ResolverResult {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	re := &resolverEnv{Env: e, cat: newCatalog("r-", sz.ResolverServices, 2, []string{"dc1"})}
	re.cat.register(tb, e.Fed)
	defer re.cat.deregister(tb, e.Fed)
	re.srv = harness.StartServer(tb, "gw-r")
	re.ctrl = controller(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"r-*"}, gateways: []gwConf{{name: "gw-r", dc: "dc1", srv: re.srv}}})
	re.ctrl.start(tb)
	defer re.ctrl.stop()

	res := ResolverResult{Services: sz.ResolverServices, Window: sz.ResolverWindow, Sources: map[string]int64{}}
	re.atScale(&res)
	res.Flood = re.flood()
	res.Hung = re.hung()
	res.Killed = re.killed()
	resolverRows(e, t, res, gatewayBench)
	return res
}

// atScale: a resolver (through a counting proxy) first looks up every
// service, then serves steady lookups for the window while changes are
// timed; the micro-benchmarks run on it at the end.
func (re *resolverEnv) atScale(res *ResolverResult) {
	tb := re.TB
	proxy := harness.NewProxy(tb, re.srv.HTTPAddr())
	r := re.startResolver("gw-r", "dc1", proxy.Addr(), 100)
	defer r.stop()
	waitLocal(tb, r)
	proxy.Reset()
	names := re.cat.services
	if bad := resolveAll(r, names, gateway.SourceLocal, 2); bad != "" {
		tb.Fatalf("bench: first lookups of %d services: %s", len(names), bad)
	}
	lk := startLookups(r, names, 4)
	res.Resolver, res.Blocking = re.changes(r, re.Sizes.ResolverChanges)
	if rest := res.Window - time.Since(lk.began); rest > 0 {
		<-time.After(rest) // the rest of the measured window, not a synchronisation
	}
	res.Lookups, res.Failed, res.Sources = lk.stop()
	res.MaxConns, res.OpenConns, res.LocalReqs = proxy.MaxConns(), proxy.Conns(), proxy.Count(nil)
	res.Resolve, res.PickWeighted, res.PickRR = micro(tb, r, names[0], re.Sizes.MicroTime)
}

// resolveAll looks every name up (32 at a time) and describes the first
// answer that is not from source with want instances ("" if none).
func resolveAll(r *runningResolver, names []string, source gateway.Source, want int) string {
	var next atomic.Int64
	var mu sync.Mutex
	var bad string
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				a, err := r.Resolve(ctx, names[i])
				cancel()
				if err != nil || a.Source != source || len(a.Instances) != want {
					mu.Lock()
					if bad == "" {
						bad = fmt.Sprintf("%s: %d instances from %s (%v), want %d from %s", names[i], len(a.Instances), a.Source, err, want, source)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return bad
}

// lookups resolves random names in the background and tallies answers.
type lookups struct {
	began         time.Time
	total, failed atomic.Int64
	mu            sync.Mutex
	bySource      map[string]int64
	done          chan struct{}
	wg            sync.WaitGroup
}

// startLookups runs workers that each resolve 100 random names every
// 10 ms (10,000 a second each): a busy gateway node's rate, leaving the
// shared cores to the rest of the run.
func startLookups(r *runningResolver, names []string, workers int) *lookups {
	lk := &lookups{began: time.Now(), bySource: map[string]int64{}, done: make(chan struct{})}
	for range workers {
		lk.wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				if n%100 == 0 {
					select {
					case <-lk.done:
						return
					case <-tick.C:
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				a, err := r.Resolve(ctx, names[rand.IntN(len(names))])
				cancel()
				lk.total.Add(1)
				if err != nil || a.Empty() {
					lk.failed.Add(1)
				}
				lk.mu.Lock()
				lk.bySource[a.Source.String()]++
				lk.mu.Unlock()
			}
		})
	}
	return lk
}

// stop ends the lookups and returns the totals.
func (lk *lookups) stop() (total, failed int64, bySource map[string]int64) {
	close(lk.done)
	lk.wg.Wait()
	return lk.total.Load(), lk.failed.Load(), lk.bySource
}

// changes flips the check of a random service's second instance n times,
// one at a time, and times from each public write until the resolver
// answers accordingly, and until a blocking query on the service in the
// dedicated cluster (opened before the write) does.
func (re *resolverEnv) changes(r *runningResolver, n int) (viaResolver, viaBlocking []time.Duration) {
	tb := re.TB
	pub := re.Fed.Server("dc1").Client(re.TB)
	ded := client(tb, re.srv.HTTPAddr(), -1, 4)
	critical := map[string]bool{}
	for range n {
		svc := re.cat.services[rand.IntN(len(re.cat.services))]
		in := re.cat.instances[svc][1]
		critical[svc] = !critical[svc]
		status, want := api.HealthPassing, 2
		if critical[svc] {
			status, want = api.HealthCritical, 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, idx, err := healthPassing(ctx, ded, svc, 0)
		if err != nil {
			cancel()
			tb.Fatalf("bench: read %s: %v", svc, err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		var dBlock, dRes time.Duration
		var errBlock, errRes error
		wg.Go(func() {
			dBlock, errBlock = waitBlocking(ctx, ded, svc, idx, func(es []*api.ServiceEntry) bool { return len(es) == want }, start)
		})
		wg.Go(func() { dRes, errRes = waitCount(ctx, r, svc, want, start) })
		if err := setCheck(pub, in, status); err != nil {
			tb.Fatalf("bench: %v", err)
		}
		wg.Wait()
		cancel()
		if errBlock != nil || errRes != nil {
			tb.Fatalf("bench: change of %s not seen: blocking query %v, resolver %v", svc, errBlock, errRes)
		}
		viaResolver, viaBlocking = append(viaResolver, dRes), append(viaBlocking, dBlock)
	}
	re.restore(pub, ded, critical)
	return viaResolver, viaBlocking
}

// restore brings every instance the changes left critical back to
// passing and waits for the mirror to show it: the next phases expect
// every service with both instances.
func (re *resolverEnv) restore(pub, ded *api.Client, critical map[string]bool) {
	tb := re.TB
	for svc, crit := range critical {
		if !crit {
			continue
		}
		if err := setCheck(pub, re.cat.instances[svc][1], api.HealthPassing); err != nil {
			tb.Fatalf("bench: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := waitBlocking(ctx, ded, svc, 0, func(es []*api.ServiceEntry) bool { return len(es) == 2 }, time.Now())
		cancel()
		if err != nil {
			tb.Fatalf("bench: %s back to 2 instances in the mirror: %v", svc, err)
		}
	}
}

// waitCount polls r (an in-memory read) until svc has want instances.
func waitCount(ctx context.Context, r *runningResolver, svc string, want int, start time.Time) (time.Duration, error) {
	tick := time.NewTicker(200 * time.Microsecond) // the measurement's resolution
	defer tick.Stop()
	for {
		if a, err := r.Resolve(ctx, svc); err == nil && len(a.Instances) == want {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("resolver: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Micro is an in-process micro-benchmark result.
type Micro struct {
	N           int
	NsPerOp     float64
	AllocsPerOp float64
}

// micro benchmarks a cached Resolve of svc and the two pickers on its
// answer.
func micro(tb testing.TB, r *runningResolver, svc string, d time.Duration) (resolve, weighted, rr Micro) {
	ctx := context.Background()
	var bad atomic.Int64
	resolve = microBench(d, func() {
		if a, err := r.Resolve(ctx, svc); err != nil || a.Empty() {
			bad.Add(1)
		}
	})
	a, _ := r.Resolve(ctx, svc)
	weighted = microBench(d, func() {
		if _, ok := gateway.PickWeighted(a.Instances); !ok {
			bad.Add(1)
		}
	})
	var rrPick gateway.RoundRobin
	rr = microBench(d, func() {
		if _, ok := rrPick.Pick(a.Instances); !ok {
			bad.Add(1)
		}
	})
	if bad.Load() > 0 {
		tb.Fatalf("bench: %d failed resolves or picks while benchmarking", bad.Load())
	}
	return resolve, weighted, rr
}

// microBench runs f in rounds of doubling size until a round lasts at
// least d, and reports that round. testing.Benchmark cannot be used here:
// it deadlocks when called from a running benchmark (BenchmarkGwsync).
// Allocations are counted from runtime.MemStats.Mallocs, which includes
// any other goroutine's (the resolver's background work is idle then).
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

// sourcesString lists counts by answer source in a fixed order.
func sourcesString(m map[string]int64) string {
	out := ""
	for _, k := range []string{"local", "memory", "public", "snapshot", "none"} {
		if m[k] > 0 {
			if out != "" {
				out += ", "
			}
			out += fmt.Sprintf("%s %d", k, m[k])
		}
	}
	return out
}

// resolverChart draws the propagation of changes to the resolver and to a
// per-service blocking query.
func resolverChart(e *Env, res ResolverResult) {
	if len(res.Resolver) == 0 {
		return
	}
	e.Charts.Add(chartspec.Chart{File: chartFile("resolver"), Title: fmt.Sprintf("A change reaching a resolver holding %d services", res.Services), Scenario: "5", Kind: chartspec.CDF,
		X: chartspec.Axis{Label: "time from the public write (ms)", Log: true}, Y: chartspec.Axis{Label: "fraction of changes"},
		Series: []chartspec.Series{{Name: "resolver (one watch of the gateway's records)", Samples: positive(ms(res.Resolver), 0.01)},
			{Name: "blocking query on the service (previous resolver)", Samples: positive(ms(res.Blocking), 0.01)}}})
}
