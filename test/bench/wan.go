package bench

import (
	"fmt"
	"sync"
	"time"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/test/bench/chartspec"
)

// WANPhase is scenario 6 without or with the added latency.
type WANPhase struct {
	Delay                  time.Duration
	MaxGoroutines, MaxRSS  float64 // sampled from the controller's /metrics every 100 ms
	MaxInFlight            int     // calls in the public proxy at once
	PublicCalls            int
	Cycles                 float64 // full cycles finished in the window
	Lookups, Failed, Local int64   // resolvers on the dedicated cluster
}

// WANResult is scenario 6.
type WANResult struct {
	// Bound is max_in_flight_per_dc × the keys the controller's reader
	// limits (3 DCs + its agent-level calls), plus the change feed's two
	// blocking reads per DC and its DC list refresh.
	Bound    int
	Baseline WANPhase
	Slow     WANPhase
}

// wanSchedule keeps scenario 6's public side busy: a full reconcile of
// every gateway every second.
const wanSchedule = "@every 1s"

// ScenarioWAN (6) runs `gwsync run` (a full reconcile every second,
// gateways gw-a and gw-b) with resolvers reading gw-a's cluster, first
// with the public side as is, then with WANDelay added to every public
// response.
func ScenarioWAN(e *Env, t *Table) WANResult {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	res := WANResult{Bound: config.DefaultMaxInFlightPerDC*(len(e.DCs)+1) + 2*len(e.DCs) + 1}
	gws := []gwConf{{name: "gw-a", dc: "dc1", srv: e.GwA}, {name: "gw-b", dc: "dc2", srv: e.GwB}}
	p := startCtrl(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, schedule: wanSchedule, gateways: gws})
	p.waitSynced(gws, 5*time.Minute)
	n := sz.Resolvers[len(sz.Resolvers)/2]
	rs := make([]*runningResolver, n)
	for i := range rs {
		rs[i] = e.startResolver("gw-a", "dc1", e.GwA.HTTPAddr(), i)
	}
	for _, r := range rs {
		waitLocal(tb, r)
	}
	phase := func(delay time.Duration) WANPhase {
		ph := WANPhase{Delay: delay}
		e.Proxy.SetDelay(delay)
		e.Proxy.Reset()
		p.resetPeaks()
		before, err := p.scrape()
		if err != nil {
			tb.Fatalf("bench: scrape: %v", err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			ph.Lookups, ph.Failed, ph.Local = lookupLoop(rs, e.Base.services, sz.LookupPeriod, sz.WANWindow)
		})
		wg.Wait()
		after, err := p.scrape()
		if err != nil {
			tb.Fatalf("bench: scrape: %v", err)
		}
		ph.Cycles = after.get("gwsync_sync_duration_seconds_count", `scope="full"`) - before.get("gwsync_sync_duration_seconds_count", `scope="full"`)
		ph.MaxGoroutines, ph.MaxRSS = p.peaks()
		ph.MaxInFlight = e.Proxy.MaxInFlight()
		ph.PublicCalls = e.Proxy.Count(nil)
		return ph
	}
	res.Baseline = phase(0)
	res.Slow = phase(sz.WANDelay)
	e.Proxy.SetDelay(0)
	p.stop()
	for _, r := range rs {
		r.stop()
	}

	b, s := res.Baseline, res.Slow
	d := fmt.Sprintf("+%s WAN", fmtDur(sz.WANDelay))
	t.Add(Row{Scenario: "6", Measure: "controller max goroutines", Gwsync: fmtF(s.MaxGoroutines) + " (" + d + ")", Comparison: fmtF(b.MaxGoroutines) + " (no delay)", Ratio: ratio(s.MaxGoroutines, b.MaxGoroutines)})
	t.Add(Row{Scenario: "6", Measure: "controller max RSS", Gwsync: fmtMiB(s.MaxRSS) + " (" + d + ")", Comparison: fmtMiB(b.MaxRSS) + " (no delay)", Ratio: ratio(s.MaxRSS, b.MaxRSS)})
	t.Add(Row{Scenario: "6", Measure: "max calls in flight to the public cluster", Gwsync: fmt.Sprintf("%d (%s)", s.MaxInFlight, d), Comparison: fmt.Sprintf("%d (no delay)", b.MaxInFlight),
		Ratio: fmt.Sprintf("bound %d", res.Bound), Note: fmt.Sprintf("max_in_flight_per_dc %d × (3 DCs + agent-level calls) + change feed (2 blocking reads per DC + DC list)", config.DefaultMaxInFlightPerDC)})
	t.Add(Row{Scenario: "6", Measure: "full cycles finished / public calls in the window", Gwsync: fmt.Sprintf("%.0f / %d (%s)", s.Cycles, s.PublicCalls, d), Comparison: fmt.Sprintf("%.0f / %d (no delay)", b.Cycles, b.PublicCalls),
		Note: fmt.Sprintf("2 gateways, %d services, schedule `%s` (event path on), %s window", len(e.Base.services), wanSchedule, fmtDur(sz.WANWindow))})
	t.Add(Row{Scenario: "6", Measure: fmt.Sprintf("dedicated cluster keeps serving: %d resolvers' lookups failed / answered locally", n),
		Gwsync: fmt.Sprintf("%d failed of %d, %.1f%% local (%s)", s.Failed, s.Lookups, pct(s.Local, s.Lookups), d), Comparison: fmt.Sprintf("%d failed of %d, %.1f%% local (no delay)", b.Failed, b.Lookups, pct(b.Local, b.Lookups))})
	if s.MaxInFlight > res.Bound {
		t.Note("Scenario 6: calls in flight to the public cluster (%d) exceeded the bound (%d).", s.MaxInFlight, res.Bound)
	}
	t.Note("Scenario 6: `gwsync run` (subprocess) with a full reconcile every second, to keep the public side busy, then the same with %s added to every public response by the proxy; the bound counts the change feed's reads too (two blocking reads per DC and the DC list, which max_in_flight_per_dc does not limit).", fmtDur(sz.WANDelay))
	e.Charts.Add(chartspec.Chart{File: chartFile("wan"), Title: "Calls in flight to the public cluster, slow WAN", Scenario: "6", Kind: chartspec.Bars,
		Y: chartspec.Axis{Label: "calls at once"}, Categories: []string{"no delay", "+" + fmtDur(sz.WANDelay) + " per response"},
		Series: []chartspec.Series{{Name: "max calls in flight", Y: []float64{float64(b.MaxInFlight), float64(s.MaxInFlight)}}},
		Refs:   []chartspec.Ref{{Name: fmt.Sprintf("bound (%d)", res.Bound), Value: float64(res.Bound)}}})
	return res
}
