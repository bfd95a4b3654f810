package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/harness"
)

// ScaleResult is scenario 4 at one catalog size.
type ScaleResult struct {
	Services, PerService, Gateways int
	Register                       time.Duration // bulk registration into the public DCs (setup)
	// Initial mirror: start of `gwsync run` to every gateway's first
	// complete sync; what it cost.
	Wall        time.Duration
	PublicCalls int     // requests through the public proxy in that time
	Txns, Ops   float64 // txns and ops written to every dedicated cluster
	InitExec    execs   // the prepared-query executions it made
	Mirrored    float64 // instances mirrored, summed over gateways
	// Raw txn throughput into a fresh dedicated Consul (ops/s), by 1 and
	// by 4 writers; RawClusters is per cluster, with one writer into each
	// of Gateways fresh clusters at once (what an initial mirror writes).
	Raw1, Raw4, RawClusters float64
	// PeakRSS is the process's VmHWM after the initial mirror and the
	// steady cycles; PeakGoroutines the highest go_goroutines sampled,
	// PeakHeap the highest go_memstats_heap_inuse_bytes.
	PeakRSS, PeakGoroutines, PeakHeap float64
	// HeapInUse is the process's heap in use after the steady rounds
	// (go_memstats_heap_inuse_bytes, garbage included); LiveHeap what is
	// left allocated after a forced GC: what the controller keeps.
	HeapInUse, LiveHeap float64
	// Steady full cycles (every gateway at once, as their schedules run
	// them): the slowest gateway's cycle, per round; what the last round
	// cost.
	Steady      []time.Duration
	SteadyOps   float64 // catalog ops written by the last round
	SteadyKV    float64 // KV ops written by it (marker, records)
	Allocs      float64 // heap allocations per gateway cycle (go_memstats_mallocs_total)
	CycleCalls  int     // public requests of the last round (every gateway)
	CycleBytes  int64   // public bytes (both ways) of the last round
	CycleShared string  // how the gateways' reads were shared
	CycleExec   execs   // the last round's executions
	// Overlaps counts rounds a scheduled full reconcile ran into anyway.
	Overlaps int
}

// execs are prepared-query executions as the controller timed them
// (gwsync_public_request_duration_seconds{op="execute"}).
type execs struct {
	N    float64
	Mean time.Duration
}

func execsOf(before, after metrics) execs {
	n := delta(before, after, "gwsync_public_request_duration_seconds_count", `op="execute"`)
	if n == 0 {
		return execs{}
	}
	return execs{N: n, Mean: time.Duration(delta(before, after, "gwsync_public_request_duration_seconds_sum", `op="execute"`) / n * float64(time.Second))}
}

func (x execs) String() string {
	return fmt.Sprintf("%.0f prepared-query executions, %s each on average", x.N, fmtDur(x.Mean))
}

// OpsPerSec is the initial mirror's mean write rate into one dedicated
// cluster.
func (r ScaleResult) OpsPerSec() float64 {
	return r.Ops / float64(r.Gateways) / r.Wall.Seconds()
}

// BytesPerInstance is peak RSS over the instances mirrored (all gateways).
func (r ScaleResult) BytesPerInstance() float64 { return r.PeakRSS / r.Mirrored }

// LastSteady is the last steady round's slowest gateway cycle.
func (r ScaleResult) LastSteady() time.Duration { return r.Steady[len(r.Steady)-1] }

// steadyRounds: the first steady round after an initial mirror is
// reported but not the figure (its gateways may still reread models the
// initial commits moved); the last is.
const steadyRounds = 2

// scalePoint is one catalog size's setup: the public catalog and the
// dedicated clusters of its gateways (half on source dc1, half on dc2).
type scalePoint struct {
	n    int
	cat  *catalog
	gws  []gwConf
	conf ctrlConf
}

// ScaleResults are scenarios 4, 7 and 8, which share their catalogs.
type ScaleResults struct {
	Scale  []ScaleResult
	Steady []SteadyLoad
	Churn  *ChurnResult
}

// ScenarioScale (4) mirrors each ScaleServices × ScaleInstances catalog
// into ScaleGateways new dedicated clusters with `gwsync run` as a
// subprocess, next to the raw txn throughput of a dedicated Consul
// measured in the same run; on the same catalogs it runs scenario 7
// (steady public load) and 8 (churn) where Sizes asks for them.
func ScenarioScale(e *Env, t *Table) ScaleResults {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	var out ScaleResults
	for _, n := range sz.ScaleServices {
		pt := e.newScalePoint(n)
		r := ScaleResult{Services: n, PerService: sz.ScaleInstances, Gateways: len(pt.gws)}
		r.Register = pt.cat.register(tb, e.Fed)
		r.Raw1, r.Raw4, r.RawClusters = rawThroughputs(tb, sz.RawWindow, len(pt.gws))
		pt.startClusters(tb)

		p := e.initialMirror(pt, &r)
		e.steadyCycles(p, pt, &r)
		var st *SteadyLoad
		if slices.Contains(sz.SteadyLoadServices, n) {
			st = &SteadyLoad{Services: n, Window: sz.SteadyWindow, CycleCalls: float64(r.CycleCalls), CycleBytes: float64(r.CycleBytes)}
			e.steadyEvents(p, st, len(pt.gws), r.LastSteady())
		}
		if n == sz.ChurnServices {
			out.Churn = e.churn(p, pt, r.LastSteady())
		}
		r.PeakGoroutines, _ = p.peaks()
		p.stop()
		if st != nil {
			e.steadyOld(pt, st)
			out.Steady = append(out.Steady, *st)
		}
		for _, g := range pt.gws {
			g.srv.Stop(tb)
		}
		pt.cat.deregister(tb, e.Fed)
		out.Scale = append(out.Scale, r)
		scaleRows(t, r)
	}
	scaleNotes(e, t, out.Scale)
	steadyRows(e, t, out.Steady)
	if out.Churn != nil {
		churnRows(e, t, *out.Churn)
	} else {
		t.Note("Scenario 8 (churn) did not run: its catalog size (%d services) is not among this run's scale points %v.", sz.ChurnServices, sz.ScaleServices)
	}
	return out
}

func (e *Env) newScalePoint(n int) *scalePoint {
	sz := e.Sizes
	prefix := fmt.Sprintf("s%d-", n)
	pt := &scalePoint{n: n, cat: newCatalog(prefix, n, sz.ScaleInstances, e.DCs)}
	for i := range sz.ScaleGateways {
		dc := e.DCs[i*2/sz.ScaleGateways] // the first half on dc1, the second on dc2
		pt.gws = append(pt.gws, gwConf{name: fmt.Sprintf("gw-%s-%d", dc, i%(sz.ScaleGateways/2)+1), dc: dc})
	}
	pt.conf = ctrlConf{public: e.Proxy.Addr(), include: []string{prefix + "*"}}
	return pt
}

// sourceDCs is how many source DCs the gateways use: a full round makes
// one execution per service in each (shared by the gateways on it).
func (pt *scalePoint) sourceDCs() int {
	dcs := map[string]bool{}
	for _, g := range pt.gws {
		dcs[g.dc] = true
	}
	return len(dcs)
}

// startClusters starts every gateway's dedicated cluster.
func (pt *scalePoint) startClusters(tb testing.TB) {
	for i := range pt.gws {
		pt.gws[i].srv = harness.StartServer(tb, pt.gws[i].name)
	}
	pt.conf.gateways = pt.gws
}

// initialMirror starts `gwsync run` (event path, default schedule) and
// waits for every gateway's first complete sync.
func (e *Env) initialMirror(pt *scalePoint, r *ScaleResult) *ctrlProc {
	e.Proxy.Reset()
	start := time.Now()
	p := startCtrl(e.TB, pt.conf)
	profiled := p.profile(e.Sizes.ProfileDir, fmt.Sprintf("initial-%d", pt.n), e.Sizes.ProfileSeconds)
	if dir := e.Sizes.ProfileDir; dir != "" {
		// The heap as the last GC left it, halfway through the CPU
		// profile: what the initial mirror holds live.
		mid := time.AfterFunc(time.Duration(e.Sizes.ProfileSeconds)*time.Second/2, func() {
			if err := p.heapProfile(dir, fmt.Sprintf("heap-initial-%d", pt.n), false); err != nil {
				e.TB.Logf("bench: %v", err)
			}
		})
		defer mid.Stop()
	}
	m := p.waitSynced(pt.gws, 30*time.Minute)
	r.Wall = time.Since(start)
	defer profiled()
	r.PublicCalls = e.Proxy.Count(nil)
	r.Txns = m.get("gwsync_dedicated_txns_total", `result="ok"`)
	r.Ops = m.get("gwsync_dedicated_writes_total")
	r.InitExec = execsOf(metrics{}, m)
	return p
}

// steadyCycles runs steadyRounds full reconciles of every gateway at once
// (nothing changed in between) and records the last one's cost.
func (e *Env) steadyCycles(p *ctrlProc, pt *scalePoint, r *ScaleResult) {
	tb := e.TB
	est := r.Wall / 2 // a steady cycle writes nothing: shorter than the initial mirror
	for round := range steadyRounds {
		e.settle(est+est/2, est) // no full reconcile running, none scheduled during the round
		before, err := p.scrape()
		if err != nil {
			tb.Fatalf("bench: scrape: %v", err)
		}
		e.Proxy.Reset()
		e.Meter.Reset()
		profiled := func() {}
		if round == steadyRounds-1 {
			profiled = p.profile(e.Sizes.ProfileDir, fmt.Sprintf("steady-%d", pt.n), int(est.Seconds())+1)
		}
		p.resync(pt.gws, 30*time.Minute)
		profiled()
		after, err := p.scrape()
		if err != nil {
			tb.Fatalf("bench: scrape: %v", err)
		}
		var slowest time.Duration
		for _, g := range pt.gws {
			l := []string{`gateway="` + g.name + `"`, `scope="full"`}
			if c := delta(before, after, "gwsync_sync_duration_seconds_count", l...); c > 0 {
				slowest = max(slowest, time.Duration(delta(before, after, "gwsync_sync_duration_seconds_sum", l...)/c*float64(time.Second)))
			}
		}
		r.Steady = append(r.Steady, slowest)
		est = slowest
		if delta(before, after, "gwsync_sync_duration_seconds_count", `scope="full"`) > float64(len(pt.gws)) || e.Proxy.Count(isExecute) > pt.sourceDCs()*pt.n+pt.n/10 {
			r.Overlaps++
		}
		r.SteadyOps, r.SteadyKV = 0, delta(before, after, "gwsync_dedicated_writes_total", `op="kv_set"`)
		for _, op := range []string{"node_set", "node_delete", "service_set", "service_delete"} {
			r.SteadyOps += delta(before, after, "gwsync_dedicated_writes_total", `op="`+op+`"`)
		}
		r.Allocs = delta(before, after, "go_memstats_mallocs_total") / float64(len(pt.gws))
		r.CycleCalls = e.Proxy.Count(nil)
		up, down := e.Meter.Bytes()
		r.CycleBytes = up + down
		r.CycleShared = sharedNote(e.Proxy.Count(isExecute), len(pt.gws), pt.n)
		r.CycleExec = execsOf(before, after)
		r.Mirrored = after.get("gwsync_mirrored_instances")
		r.HeapInUse = after.get("go_memstats_heap_inuse_bytes")
	}
	r.PeakRSS, r.PeakHeap = p.vmHWM(), p.peakHeap()
	live, err := p.liveHeap(e.Sizes.ProfileDir, fmt.Sprintf("heap-%d", pt.n))
	if err != nil { // a diagnostic: it does not fail an hour-long run
		tb.Logf("bench: live heap: %v", err)
	}
	r.LiveHeap = live
}

// sharedNote says how many executions a round made against one per
// (gateway, service).
func sharedNote(executes, gateways, services int) string {
	return fmt.Sprintf("%d prepared-query executions for %d gateways × %d services", executes, gateways, services)
}

func scaleRows(t *Table, r ScaleResult) {
	size := fmt.Sprintf("%d services × %d, %d gateways", r.Services, r.PerService, r.Gateways)
	t.Add(Row{Scenario: "4", Measure: size + ": initial mirror wall time", Gwsync: fmtDur(r.Wall),
		Note: fmt.Sprintf("%.0f instances mirrored; public setup (bulk txn registration) took %s", r.Mirrored, fmtDur(r.Register))})
	t.Add(Row{Scenario: "4", Measure: size + ": initial mirror write rate into one dedicated cluster (txn ops/s)",
		Gwsync: fmtF(r.OpsPerSec()), Comparison: fmt.Sprintf("%s (raw, 1 writer) / %s (raw, 4 writers) / %s (raw, %d clusters at once, per cluster)", fmtF(r.Raw1), fmtF(r.Raw4), fmtF(r.RawClusters), r.Gateways),
		Ratio: fmt.Sprintf("gwsync %.0f%% of raw 1-writer, %.0f%% of raw %d clusters at once", 100*r.OpsPerSec()/r.Raw1, 100*r.OpsPerSec()/r.RawClusters, r.Gateways),
		Note:  targetNote(100*r.OpsPerSec()/r.Raw1 >= 50, "target ≥ 50% of raw 1-writer")})
	t.Add(Row{Scenario: "4", Measure: size + ": public calls / txns / ops written (initial mirror)", Gwsync: fmt.Sprintf("%d / %.0f / %.0f", r.PublicCalls, r.Txns, r.Ops),
		Note: r.InitExec.String() + " (at most max_in_flight_per_dc at a time per DC)"})
	t.Add(Row{Scenario: "4", Measure: size + ": controller peak RSS / bytes per mirrored instance", Gwsync: fmtMiB(r.PeakRSS) + " / " + fmtBytes(r.BytesPerInstance()),
		Note: fmt.Sprintf("VmHWM over %.0f instances (all gateways); heap in use at its highest sampled %s (%s per instance), after the steady rounds %s (%s per instance), live after a forced GC %s (%s per instance); peak goroutines %s; target ≤ 2 KiB per instance at 10k × 10 × 4",
			r.Mirrored, fmtMiB(r.PeakHeap), fmtBytes(r.PeakHeap/r.Mirrored), fmtMiB(r.HeapInUse), fmtBytes(r.HeapInUse/r.Mirrored), fmtMiB(r.LiveHeap), fmtBytes(r.LiveHeap/r.Mirrored), fmtF(r.PeakGoroutines))})
	steady := make([]string, len(r.Steady))
	for i, d := range r.Steady {
		steady[i] = fmtDur(d)
	}
	t.Add(Row{Scenario: "4", Measure: size + ": steady full cycle (slowest gateway) / ops written", Gwsync: fmt.Sprintf("%s / %.0f", fmtDur(r.LastSteady()), r.SteadyOps),
		Note: fmt.Sprintf("rounds: %s (every gateway at once); KV writes %.0f; %s; target at 5k services ≤ 5 s with 0 ops", strings.Join(steady, ", "), r.SteadyKV, r.CycleExec)})
	if r.Overlaps > 0 {
		t.Note("Scenario 4 (%s): a scheduled full reconcile ran into %d of the %d measured steady rounds (they could not be placed between two runs of the schedule); its requests and allocations are in those rounds' figures.", size, r.Overlaps, len(r.Steady))
	}
	t.Add(Row{Scenario: "4", Measure: size + ": allocations per steady cycle (one gateway)", Gwsync: fmtCount(r.Allocs), Note: "go_memstats_mallocs_total of the controller process, per gateway cycle"})
	t.Add(Row{Scenario: "4", Measure: size + ": public requests / bytes per full cycle (every gateway)", Gwsync: fmt.Sprintf("%d / %s", r.CycleCalls, fmtBytes(float64(r.CycleBytes))),
		Note: r.CycleShared + " (shared per source DC)"})
}

func targetNote(met bool, target string) string {
	if met {
		return target + ": met"
	}
	return target + ": missed"
}
