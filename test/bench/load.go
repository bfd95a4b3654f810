package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/bench/chartspec"
	"github.com/gwsync/gwsync/test/harness"
)

// LoadPoint is scenario 1 at one gateway node count.
type LoadPoint struct {
	Resolvers int
	// Requests reaching the public cluster per minute: the old design's;
	// gwsync's in the window, and with its safety-net full reconcile
	// (SafetyNetPerMin) added.
	OldPerMin, GwsyncPerMin, GwsyncTotalPerMin float64
	// Lookups done and failed (error or no instances) by the gwsync
	// resolvers, and how many were answered locally.
	Lookups, Failed, Local int64
	// FullCycles ran in gwsync's window, and the change feed's resync
	// events (which start one) in it.
	FullCycles, Resyncs float64
}

// ScenarioLoad (1) counts requests reaching the public cluster while N
// gateway nodes resolve every service continuously: (a) the old design,
// each node executing the prepared query itself behind a per-node TTL
// cache; (b) gwsync, a controller with the event path and the default
// schedule feeding the dedicated cluster, and N resolvers reading it. Each
// simulated node connects from its own loopback address.
func ScenarioLoad(e *Env, t *Table) []LoadPoint {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	ctrl := controller(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, gateways: []gwConf{{name: "gw-a", dc: "dc1", srv: e.GwA}}})
	ctrl.start(tb) // the mirror exists before gwsync's windows: steady state is measured
	defer ctrl.stop()
	// The safety net: one full reconcile per schedule period (5 min by
	// default), amortised over it.
	e.settle(10*time.Second, 5*time.Second)
	e.Proxy.Reset()
	syncUntilComplete(tb, ctrl, "gw-a")
	safetyNet := perMin(float64(e.Proxy.Count(nil)), defaultPeriod)

	var points []LoadPoint
	for _, n := range sz.Resolvers {
		p := LoadPoint{Resolvers: n}
		e.Proxy.Reset()
		e.oldDesign(n)
		p.OldPerMin = perMin(float64(e.Proxy.Count(nil)), sz.LoadWindow)

		rs := make([]*runningResolver, n)
		for i := range rs {
			rs[i] = e.startResolver("gw-a", "dc1", e.GwA.HTTPAddr(), i)
		}
		for _, r := range rs {
			waitLocal(tb, r)
		}
		e.settle(sz.LoadWindow, 5*time.Second) // a cycle of these few services ends in seconds
		e.Proxy.Reset()
		before := gathered(tb, ctrl.reg)
		p.Lookups, p.Failed, p.Local = lookupLoop(rs, e.Base.services, sz.LookupPeriod, sz.LoadWindow)
		after := gathered(tb, ctrl.reg)
		p.FullCycles = delta(before, after, "gwsync_sync_duration_seconds_count", `scope="full"`)
		p.Resyncs = delta(before, after, "gwsync_watch_events_total", `kind="resync"`)
		p.GwsyncPerMin = perMin(float64(e.Proxy.Count(nil)), sz.LoadWindow)
		p.GwsyncTotalPerMin = p.GwsyncPerMin + safetyNet
		for _, r := range rs {
			r.stop()
		}
		points = append(points, p)
	}
	loadRows(e, t, points, safetyNet)
	return points
}

// defaultPeriod is the default full-reconcile schedule's period.
var defaultPeriod = scheduleEvery(config.DefaultSchedule)

// quietSlot waits until a window of the given length fits between two
// safety-net full reconciles: an "@every" schedule runs on a wall-clock
// grid of its period (syncer's nextRun: gateways with the same period
// start together), so the window must start at least settle after a grid
// point (the cycle that started there has ended) and end before the next.
// Measuring the event path's own traffic in such a window, and adding the
// safety net's cost per period apart, counts every cycle exactly once. It
// waits on the wall clock; it synchronises nothing. When window + settle
// exceeds the period it returns at once.
func quietSlot(window, settle time.Duration) {
	if wait := quietWait(time.Now(), defaultPeriod, window, settle); wait > 0 {
		<-time.After(wait)
	}
}

// quietWait is how long quietSlot waits from now.
func quietWait(now time.Time, period, window, settle time.Duration) time.Duration {
	if period <= 0 || window+settle > period {
		return 0
	}
	into := time.Duration(now.UnixNano() % int64(period)) // since the last grid point
	switch {
	case into < settle:
		return settle - into
	case into+window > period:
		return period - into + settle
	default:
		return 0
	}
}

// publicQuiet is how long the public side must see no request but
// blocking reads for waitPublicIdle: longer than the share window, and
// far longer than the gap between two executions of a running cycle.
const publicQuiet = config.DefaultShareWindow + time.Second

// waitPublicIdle waits until the proxy has seen nothing but blocking reads
// for publicQuiet: no full reconcile runs (a cycle reads continuously).
// After an initial mirror the controller may run a second full reconcile
// on its own (the change feed's first list of a DC came after the first
// one started); measurements wait for it.
func (e *Env) waitPublicIdle(timeout time.Duration) {
	e.TB.Helper()
	last, since := -1, time.Now()
	harness.Eventually(e.TB, timeout, func() error {
		if n := e.Proxy.Count(func(r harness.Request) bool { return !isBlocking(r) }); n != last {
			last, since = n, time.Now()
		}
		if q := time.Since(since); q < publicQuiet {
			return fmt.Errorf("public requests %s ago", q.Round(time.Millisecond))
		}
		return nil
	})
}

// settle waits until no full reconcile runs and a window of the given
// length fits before the next safety-net run (see quietSlot); cycle is
// how long a full reconcile takes.
func (e *Env) settle(window, cycle time.Duration) {
	e.TB.Helper()
	for range 3 {
		quietSlot(window, cycle+cycle/2+10*time.Second)
		e.waitPublicIdle(cycle*3 + time.Minute)
		if quietWait(time.Now(), defaultPeriod, window, 0) == 0 {
			return
		}
	}
}

func loadRows(e *Env, t *Table, points []LoadPoint, safetyNet float64) {
	sz := e.Sizes
	base := points[0]
	for _, p := range points {
		if p.FullCycles > 0 {
			t.Note("Scenario 1 (N = %d): %.0f full reconciles ran in gwsync's window, chosen between two runs of the safety net (the change feed resynchronised %.0f times in it: each resync of a DC's feed runs a full reconcile of the gateways that depend on it); their requests are in the window's figure.", p.Resolvers, p.FullCycles, p.Resyncs)
		}
		t.Add(Row{Scenario: "1", Measure: fmt.Sprintf("public requests/min, N = %d gateway nodes", p.Resolvers),
			Gwsync: fmtF(p.GwsyncTotalPerMin), Comparison: fmtF(p.OldPerMin) + " (old design)",
			Ratio: fmt.Sprintf("gwsync %s of N=%d, old %s of N=%d", ratio(p.GwsyncTotalPerMin, base.GwsyncTotalPerMin), base.Resolvers, ratio(p.OldPerMin, base.OldPerMin), base.Resolvers),
			Note: fmt.Sprintf("%s in the window + %s safety net; old/gwsync = %s; gwsync lookups %d, failed %d, local %.1f%%",
				fmtF(p.GwsyncPerMin), fmtF(safetyNet), ratio(p.OldPerMin, p.GwsyncTotalPerMin), p.Lookups, p.Failed, pct(p.Local, p.Lookups))})
	}
	t.Note("Scenario 1: %d services (%d instances each, home DCs round robin over dc1..dc3), each gateway node resolves every service every %s; old design = per-node TTL cache of %s in front of `query/<q>/execute?dc=dc1`; gwsync = controller (event path, default schedule `%s`, gateway source dc1) + dedicated cluster + resolvers. Requests counted by a proxy in front of the public cluster over %s per point (the issue asks for 60 s; `make bench BENCH_LOAD_WINDOW=60s` runs that); gwsync's figure adds its safety-net full reconcile (its requests measured once, divided by the schedule period). Each simulated node connects from its own loopback address, as real nodes have their own (Consul limits connections per client address).",
		sz.Services, sz.InstancesPerService, sz.LookupPeriod, sz.OldTTL, config.DefaultSchedule, sz.LoadWindow)
	var xs, old, gw []float64
	for _, p := range points {
		xs = append(xs, float64(p.Resolvers))
		old = append(old, p.OldPerMin)
		gw = append(gw, p.GwsyncTotalPerMin)
	}
	e.Charts.Add(chartspec.Chart{File: chartFile("load"), Title: "Public requests/min vs gateway nodes", Scenario: "1", Kind: chartspec.Lines,
		X: chartspec.Axis{Label: "gateway nodes"}, Y: chartspec.Axis{Label: "requests/min to the public Consul", Log: true},
		Series: []chartspec.Series{{Name: "old design (each node executes, cached " + sz.OldTTL.String() + ")", X: xs, Y: positive(old, 0.1)},
			{Name: "gwsync (controller + mirror)", X: xs, Y: positive(gw, 0.1)}}})
}

// oldDesign runs n old-design gateway nodes for the load window.
func (e *Env) oldDesign(n int) {
	tb := e.TB
	ctx, cancel := context.WithTimeout(context.Background(), e.Sizes.LoadWindow)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for k := range n {
		pub := client(tb, e.Proxy.Addr(), k, 0)
		wg.Go(func() { failed.Add(e.oldNode(ctx, pub)) })
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		tb.Logf("bench: old design, %d nodes: %d failed lookups", n, f)
	}
}

// oldNode is one old-design node: it resolves every service each lookup
// period, executing the prepared query when its cached answer expired.
func (e *Env) oldNode(ctx context.Context, pub *api.Client) (failed int64) {
	expires := map[string]time.Time{}
	tick := time.NewTicker(e.Sizes.LookupPeriod)
	defer tick.Stop()
	for {
		for _, svc := range e.Base.services {
			if time.Now().Before(expires[svc]) {
				continue
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			resp, _, err := pub.PreparedQuery().Execute("gwsync-"+svc, (&api.QueryOptions{Datacenter: "dc1", AllowStale: true}).WithContext(cctx))
			ccancel()
			if ctx.Err() != nil {
				return failed
			}
			if err != nil || len(resp.Nodes) == 0 {
				failed++
				continue
			}
			expires[svc] = time.Now().Add(e.Sizes.OldTTL)
		}
		select {
		case <-ctx.Done():
			return failed
		case <-tick.C:
		}
	}
}

// lookupLoop has every resolver pass over every service each period for
// window; it returns lookups, failed lookups and local answers.
func lookupLoop(rs []*runningResolver, services []string, period, window time.Duration) (lookups, failed, local int64) {
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var l, f, lo atomic.Int64
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				for _, svc := range services {
					a, err := r.Resolve(ctx, svc)
					if ctx.Err() != nil {
						return
					}
					l.Add(1)
					if err != nil || a.Empty() {
						f.Add(1)
					}
					if a.Source == gateway.SourceLocal {
						lo.Add(1)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
	return l.Load(), f.Load(), lo.Load()
}

// scheduleEvery parses "@every D" (0 if it is not of that form).
func scheduleEvery(sched string) time.Duration {
	var s string
	if _, err := fmt.Sscanf(sched, "@every %s", &s); err != nil {
		return 0
	}
	d, _ := time.ParseDuration(s)
	return d
}
