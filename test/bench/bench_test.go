package bench

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/bench/chartspec"
)

var (
	outFile      = flag.String("bench.out", "", "BenchmarkGwsync: write the markdown document to this file")
	chartsFile   = flag.String("bench.charts", "", "BenchmarkGwsync: write the chart file (for the test/bench/charts renderer) to this file")
	gatewayBench = flag.String("bench.gateway", "", "BenchmarkGwsync: `go test -bench -benchmem ./gateway/` output to include")
	loadWindow   = flag.Duration("bench.load-window", 20*time.Second, "BenchmarkGwsync: scenario 1 measuring time per point")
	window       = flag.Duration("bench.window", time.Minute, "BenchmarkGwsync: the issues' measuring windows (scenarios 5, 7, 8)")
	scale        = flag.String("bench.scale", "1000,5000,10000", "BenchmarkGwsync: scenario 4's catalog sizes (services, comma-separated)")
	takeover     = flag.String("bench.takeover", "", "BenchmarkGwsync: BenchmarkTakeover's output to include (scenario 9)")
	profileDir   = flag.String("bench.profile", "", "BenchmarkGwsync: write CPU profiles of the controller during scenario 4 to this directory")
	profileSecs  = flag.Int("bench.profile-seconds", 60, "BenchmarkGwsync: how long the initial mirror's CPU profile runs")
	remark       = flag.String("bench.remark", "", "BenchmarkGwsync: a sentence for the document's header (how the machine was used, ...)")
)

// BenchmarkGwsync runs every scenario at full size once (it takes many
// minutes, so the benchmark framework never repeats it) and prints the
// document; `make bench` runs it, writes docs/benchmarks.md and draws the
// charts.
func BenchmarkGwsync(b *testing.B) {
	sc, err := ParseScale(*scale)
	if err != nil {
		b.Fatalf("-bench.scale: %v", err)
	}
	sz := Full(*loadWindow, *window, sc)
	sz.Name = fmt.Sprintf("full sizes: scale points %v, windows %s (scenario 1) and %s", sc, *loadWindow, *window)
	sz.ProfileDir, sz.ProfileSeconds = *profileDir, *profileSecs
	tbl, charts, _ := Run(b, sz, Inputs{GatewayBench: *gatewayBench, Takeover: *takeover})
	tbl.Remark = *remark
	md := tbl.Markdown(charts.All())
	fmt.Println(md)
	writeOutputs(b, md, charts)
}

// BenchmarkScale runs scenario 4 alone (no steady-load or churn phase) at
// -bench.scale's sizes and prints its rows: `make bench-scale`, for
// profiling the controller at scale and iterating on its figures without
// the other scenarios' half hour.
func BenchmarkScale(b *testing.B) {
	sc, err := ParseScale(*scale)
	if err != nil {
		b.Fatalf("-bench.scale: %v", err)
	}
	sz := Full(*loadWindow, *window, sc)
	sz.Name = fmt.Sprintf("scenario 4 alone: scale points %v", sc)
	sz.Services, sz.SteadyLoadServices, sz.ChurnServices = 3, nil, 0
	sz.ProfileDir, sz.ProfileSeconds = *profileDir, *profileSecs
	t := NewTable(ConsulVersion(b), sz.Name)
	ScenarioScale(NewEnv(b, sz), t)
	t.Remark = *remark
	fmt.Println(t.Markdown(nil))
}

// writeOutputs writes the document and the chart file where the flags
// say (nowhere by default).
func writeOutputs(tb testing.TB, md string, charts *Charts) {
	tb.Helper()
	if *outFile != "" {
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			tb.Fatalf("write %s: %v", *outFile, err)
		}
	}
	if *chartsFile != "" {
		if err := chartspec.Write(*chartsFile, charts.File()); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestBench_Smoke runs every scenario at tiny sizes against real Consul and
// checks the document and the charts are well formed and the figures sane.
func TestBench_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Consul servers and gwsync processes")
	}
	sz := Smoke()
	tbl, charts, r := Run(t, sz, Inputs{})
	md := tbl.Markdown(charts.All())
	t.Log("\n" + md)
	checkMarkdown(t, tbl, md)
	checkCharts(t, charts)
	checkLoad(t, sz, r.Load)
	checkWrites(t, sz, r.Writes)
	checkLatency(t, sz, r.Latency)
	checkWAN(t, r.WAN)
	checkResolver(t, sz, r.Resolver)
	checkScale(t, sz, r.Scale)
	writeOutputs(t, md, charts) // with -bench.out/-bench.charts: a quick preview of the document
}

func checkLoad(t *testing.T, sz Sizes, load []LoadPoint) {
	t.Helper()
	if len(load) != len(sz.Resolvers) {
		t.Fatalf("scenario 1: %d points, want %d", len(load), len(sz.Resolvers))
	}
	first, last := load[0], load[len(load)-1]
	for _, p := range load {
		if p.OldPerMin <= 0 || p.GwsyncTotalPerMin <= 0 || p.Lookups == 0 {
			t.Errorf("scenario 1: point %+v has zero figures", p)
		}
		if p.Failed != 0 || p.Local != p.Lookups {
			t.Errorf("scenario 1: N=%d: %d of %d lookups failed, %d local", p.Resolvers, p.Failed, p.Lookups, p.Local)
		}
	}
	if last.OldPerMin < 2*first.OldPerMin {
		t.Errorf("scenario 1: old design %f/min at N=%d vs %f/min at N=%d: load should grow with nodes", last.OldPerMin, last.Resolvers, first.OldPerMin, first.Resolvers)
	}
	if last.GwsyncTotalPerMin >= last.OldPerMin/2 {
		t.Errorf("scenario 1: gwsync %f/min vs old design %f/min at N=%d", last.GwsyncTotalPerMin, last.OldPerMin, last.Resolvers)
	}
}

func checkWrites(t *testing.T, sz Sizes, w WritesResult) {
	t.Helper()
	for gw, n := range w.PerCycle {
		if n != 0 {
			t.Errorf("scenario 2: %s: %v Raft entries per steady cycle, want 0", gw, n)
		}
	}
	if w.Naive < float64(sz.Services) {
		t.Errorf("scenario 2: naive syncer %v Raft entries per cycle, want at least one per service", w.Naive)
	}
}

func checkLatency(t *testing.T, sz Sizes, lat []Latencies) {
	t.Helper()
	if len(lat) != 2 {
		t.Fatalf("scenario 3: %d kinds of change, want 2", len(lat))
	}
	for _, l := range lat {
		if len(l.Dedicated) < sz.Changes || len(l.Resolver) != len(l.Dedicated) || len(l.Floor) != len(l.Dedicated) {
			t.Errorf("scenario 3 %s: %d/%d/%d samples, want %d", l.Kind, len(l.Dedicated), len(l.Resolver), len(l.Floor), sz.Changes)
		}
		d, f := percentiles(l.Dedicated), percentiles(l.Floor)
		// The event path, not the 5-minute safety net, carried them.
		if f[0] <= 0 || d[0] < f[0] || d[2] > 20*time.Second {
			t.Errorf("scenario 3 %s: dedicated %v, floor %v: not sane", l.Kind, d, f)
		}
	}
}

func checkWAN(t *testing.T, w WANResult) {
	t.Helper()
	for _, ph := range []WANPhase{w.Baseline, w.Slow} {
		if ph.MaxGoroutines <= 0 || ph.MaxRSS <= 0 || ph.MaxInFlight <= 0 || ph.Lookups == 0 {
			t.Errorf("scenario 6: phase %+v has zero figures", ph)
		}
		if ph.MaxInFlight > w.Bound {
			t.Errorf("scenario 6: %d calls in flight, bound %d", ph.MaxInFlight, w.Bound)
		}
		if ph.Failed != 0 {
			t.Errorf("scenario 6: %d lookups failed (delay %s)", ph.Failed, ph.Delay)
		}
	}
}

func checkResolver(t *testing.T, sz Sizes, rs ResolverResult) {
	t.Helper()
	if rs.MaxConns <= 0 || rs.MaxConns > 8 {
		t.Errorf("scenario 5: %d connections to the local cluster at most, want 1..8", rs.MaxConns)
	}
	if rs.Lookups == 0 || rs.Failed != 0 || rs.Sources["local"] != rs.Lookups {
		t.Errorf("scenario 5: %d lookups, %d failed, by source %v", rs.Lookups, rs.Failed, rs.Sources)
	}
	if len(rs.Resolver) != sz.ResolverChanges || len(rs.Blocking) != sz.ResolverChanges {
		t.Errorf("scenario 5: %d/%d change samples, want %d", len(rs.Resolver), len(rs.Blocking), sz.ResolverChanges)
	}
	if rs.Resolve.NsPerOp <= 0 || rs.PickWeighted.NsPerOp <= 0 || rs.PickRR.NsPerOp <= 0 {
		t.Errorf("scenario 5: micro-benchmarks %+v %+v %+v", rs.Resolve, rs.PickWeighted, rs.PickRR)
	}
	f := rs.Flood
	if f.Empty+f.Busy != int64(f.Lookups) || f.Errors != 0 {
		t.Errorf("scenario 5: flood of %d unknown names: %d empty, %d refused, %d other errors", f.Lookups, f.Empty, f.Busy, f.Errors)
	}
	if f.HeldAfter > f.HeldBefore || f.GoroutinesAfter > f.GoroutinesBefore+20 || f.HeapAfter > f.HeapBefore+32<<20 {
		t.Errorf("scenario 5: flood left state behind: %+v", f)
	}
	for what, s := range map[string]SwitchResult{"hang": rs.Hung, "kill": rs.Killed} {
		if s.Failed != 0 || s.Lookups == 0 || s.FirstPublic <= 0 || s.FirstPublic > s.AllPublic || s.AllPublic > 30*time.Second {
			t.Errorf("scenario 5 (%s): switch %+v not sane", what, s)
		}
	}
}

func checkScale(t *testing.T, sz Sizes, r ScaleResults) {
	t.Helper()
	if len(r.Scale) != len(sz.ScaleServices) {
		t.Fatalf("scenario 4: %d points, want %d", len(r.Scale), len(sz.ScaleServices))
	}
	for _, s := range r.Scale {
		if s.Wall <= 0 || s.PublicCalls == 0 || s.Txns == 0 || s.PeakRSS <= 0 || s.PeakGoroutines <= 0 || s.Raw1 <= 0 || s.Raw4 <= 0 || s.RawClusters <= 0 ||
			s.LastSteady() <= 0 || s.Allocs <= 0 || s.CycleCalls == 0 || s.CycleBytes == 0 || s.HeapInUse <= 0 || s.LiveHeap <= 0 {
			t.Errorf("scenario 4: %+v has zero figures", s)
		}
		want := float64(s.Services * s.PerService * s.Gateways)
		if s.Mirrored != want || s.Ops < want {
			t.Errorf("scenario 4: %v instances mirrored with %v ops, want %v", s.Mirrored, s.Ops, want)
		}
		if s.SteadyOps != 0 {
			t.Errorf("scenario 4: %v catalog ops written in a steady cycle, want 0", s.SteadyOps)
		}
		if s.Overlaps != 0 {
			t.Errorf("scenario 4: another full reconcile ran into %d measured steady rounds", s.Overlaps)
		}
	}
	if len(r.Steady) != len(sz.SteadyLoadServices) {
		t.Fatalf("scenario 7: %d points, want %d", len(r.Steady), len(sz.SteadyLoadServices))
	}
	for _, s := range r.Steady {
		if s.EvPerMin() <= 0 || s.OldCalls == 0 || s.OldCycles < 1 || perMin(s.OldCalls, s.Window) < 5*s.EvPerMin() {
			t.Errorf("scenario 7: %+v: the event path should cost far fewer requests", s)
		}
		if s.EvCycles != 0 {
			t.Errorf("scenario 7: %v full reconciles per gateway in the event path's window, chosen between two safety-net runs, nothing changing", s.EvCycles)
		}
	}
	c := r.Churn
	if c == nil {
		t.Fatal("scenario 8 did not run")
	}
	if c.Changes == 0 || c.Unseen != 0 || len(c.Lags) != c.Changes || c.Executes == 0 || c.Pairs != c.Services*c.Gateways || c.Differ != 0 {
		t.Errorf("scenario 8: %d changes, %d unseen, %d lags, %d executes, %d of %d pairs differ (%v)", c.Changes, c.Unseen, len(c.Lags), c.Executes, c.Differ, c.Pairs, c.Examples)
	}
}

// checkCharts checks the chart file is valid and has every scenario's
// charts.
func checkCharts(t *testing.T, charts *Charts) {
	t.Helper()
	f := charts.File()
	if err := f.Validate(); err != nil {
		t.Errorf("charts: %v", err)
	}
	var files []string
	for _, c := range f.Charts {
		files = append(files, c.File)
	}
	for _, name := range []string{"load", "raft", "latency", "wan", "resolver", "scale-memory", "scale-rss", "scale-time", "scale-throughput", "steady-load", "churn"} {
		if !slices.Contains(files, chartFile(name)) {
			t.Errorf("no chart %s (have %v)", chartFile(name), files)
		}
	}
}

// checkMarkdown checks the header, that every scenario has rows, that
// every table line has every cell, and that every chart is linked.
func checkMarkdown(t *testing.T, tbl *Table, md string) {
	t.Helper()
	if tbl.Cores <= 0 || !strings.Contains(md, fmt.Sprintf("%d cores", tbl.Cores)) {
		t.Errorf("header lacks the core count: %q", md)
	}
	if !strings.HasPrefix(tbl.Consul, "Consul v") || !strings.Contains(md, tbl.Consul) {
		t.Errorf("header lacks the Consul version (%q)", tbl.Consul)
	}
	scenarios := map[string]bool{}
	for _, r := range tbl.Rows() {
		scenarios[r.Scenario] = true
	}
	for _, s := range []string{"1", "2", "3", "4", "5", "6", "7", "8"} {
		if !scenarios[s] {
			t.Errorf("no row for scenario %s", s)
		}
	}
	lines := 0
	for line := range strings.SplitSeq(md, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		lines++
		if strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != len(Header) {
			t.Errorf("table line has %d cells, want %d: %q", len(cells), len(Header), line)
		}
		for _, c := range cells {
			if strings.TrimSpace(c) == "" {
				t.Errorf("empty cell in %q", line)
			}
		}
	}
	if lines != len(tbl.Rows())+2 {
		t.Errorf("%d table lines, want %d rows + header + separator", lines, len(tbl.Rows()))
	}
	if !strings.Contains(md, "](benchmarks-latency.svg)") {
		t.Errorf("the document does not link the charts")
	}
}
