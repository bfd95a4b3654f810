package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/gateway"
)

// LoadPoint is scenario 1 at one resolver count.
type LoadPoint struct {
	Resolvers int
	// Requests reaching the public cluster per minute.
	OldPerMin, GwsyncPerMin float64
	// Lookups done and failed (error or no instances) by the gwsync
	// resolvers, and how many were answered locally.
	Lookups, Failed, Local int64
}

// ScenarioLoad (1) counts requests reaching the public cluster while N
// gateway nodes resolve every service continuously: (a) the old design,
// each node executing the prepared query itself behind a per-node TTL
// cache; (b) gwsync, a controller on its schedule feeding the dedicated
// cluster and N resolvers reading it.
func ScenarioLoad(e *Env, t *Table) []LoadPoint {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	conf := ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, schedule: sz.LoadSchedule,
		gateways: []gwConf{{"gw-a", "dc1", e.GwA}}}
	ctrl, _ := controller(tb, conf)
	syncUntilComplete(tb, ctrl, "gw-a") // the mirror exists before gwsync's window: steady state is measured

	var points []LoadPoint
	for _, n := range sz.Resolvers {
		p := LoadPoint{Resolvers: n}
		// (a) old design.
		e.Proxy.Reset()
		e.oldDesign(n)
		p.OldPerMin = perMin(e.Proxy.Count(nil), sz.LoadWindow)

		// (b) gwsync: resolvers first (their first lookups are local reads),
		// then the controller on its schedule for the window.
		rs := make([]*runningResolver, n)
		for i := range rs {
			rs[i] = e.startResolver("gw-a", "dc1", e.GwA, len(e.Services))
		}
		for _, r := range rs {
			waitLocal(tb, r)
		}
		e.Proxy.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		var run sync.WaitGroup
		run.Go(func() { _ = ctrl.Run(ctx) })
		p.Lookups, p.Failed, p.Local = e.lookupLoop(rs, sz.LoadWindow)
		cancel()
		run.Wait()
		p.GwsyncPerMin = perMin(e.Proxy.Count(nil), sz.LoadWindow)
		for _, r := range rs {
			r.stop()
		}
		points = append(points, p)
	}

	base := points[0]
	for _, p := range points {
		t.Add(Row{Scenario: "1", Measure: fmt.Sprintf("public requests/min, N = %d gateway nodes", p.Resolvers),
			Gwsync: fmtF(p.GwsyncPerMin), Comparison: fmtF(p.OldPerMin) + " (old design)",
			Ratio: fmt.Sprintf("gwsync %s of N=%d, old %s of N=%d", ratio(p.GwsyncPerMin, base.GwsyncPerMin), base.Resolvers, ratio(p.OldPerMin, base.OldPerMin), base.Resolvers),
			Note: fmt.Sprintf("%s per point; old/gwsync = %s; gwsync lookups %d, failed %d, local %.1f%%", fmtDur(sz.LoadWindow), ratio(p.OldPerMin, p.GwsyncPerMin),
				p.Lookups, p.Failed, pct(p.Local, p.Lookups))})
	}
	t.Note("Scenario 1: %d services (%d instances each, home DCs round robin over dc1..dc3), each gateway node resolves every service every %s; old design = per-node TTL cache of %s in front of `query/<q>/execute?dc=dc1`; gwsync = controller (`%s`, gateway source dc1) + dedicated cluster + resolvers (blocking queries on the mirror). Requests counted by a proxy in front of the public cluster, over %s per point (the issue asks for 60 s; `make bench BENCH_LOAD_WINDOW=60s` runs that).",
		sz.Services, sz.InstancesPerService, sz.LookupPeriod, sz.OldTTL, sz.LoadSchedule, sz.LoadWindow)
	return points
}

func perMin(n int, window time.Duration) float64 { return float64(n) / window.Minutes() }

func pct(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// oldDesign runs n old-design gateway nodes for the load window.
func (e *Env) oldDesign(n int) {
	tb := e.TB
	pub := client(tb, e.Proxy.Addr(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), e.Sizes.LoadWindow)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			type cached struct {
				n       int
				expires time.Time
			}
			cache := map[string]cached{}
			tick := time.NewTicker(e.Sizes.LookupPeriod)
			defer tick.Stop()
			for {
				for _, svc := range e.Services {
					if c, ok := cache[svc]; ok && time.Now().Before(c.expires) {
						continue
					}
					cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
					resp, _, err := pub.PreparedQuery().Execute("gwsync-"+svc, (&api.QueryOptions{Datacenter: "dc1", AllowStale: true}).WithContext(cctx))
					ccancel()
					if ctx.Err() != nil {
						return
					}
					if err != nil || len(resp.Nodes) == 0 {
						failed.Add(1)
						continue
					}
					cache[svc] = cached{n: len(resp.Nodes), expires: time.Now().Add(e.Sizes.OldTTL)}
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
	if f := failed.Load(); f > 0 {
		tb.Logf("bench: old design, %d nodes: %d failed lookups", n, f)
	}
}

// lookupLoop has every resolver pass over every service each lookup period
// for window; it returns lookups, failed lookups and local answers.
func (e *Env) lookupLoop(rs []*runningResolver, window time.Duration) (lookups, failed, local int64) {
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var l, f, lo atomic.Int64
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			tick := time.NewTicker(e.Sizes.LookupPeriod)
			defer tick.Stop()
			for {
				for _, svc := range e.Services {
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
