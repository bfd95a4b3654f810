package bench

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	outFile      = flag.String("bench.out", "", "BenchmarkGwsync: write the markdown table to this file")
	gatewayBench = flag.String("bench.gateway", "", "BenchmarkGwsync: `go test -bench -benchmem ./gateway/` output to include")
	loadWindow   = flag.Duration("bench.load-window", 20*time.Second, "BenchmarkGwsync: scenario 1 measuring time per point")
)

// BenchmarkGwsync runs every scenario at full size once (it takes many
// minutes, so the benchmark framework never repeats it) and prints the
// table; `make bench` runs it and writes docs/benchmarks.md.
func BenchmarkGwsync(b *testing.B) {
	t, _ := Run(b, Full(*loadWindow), *gatewayBench)
	md := t.Markdown()
	fmt.Println(md)
	if *outFile != "" {
		if err := os.WriteFile(*outFile, []byte(md), 0o644); err != nil {
			b.Fatalf("write %s: %v", *outFile, err)
		}
	}
}

// TestBench_Smoke runs every scenario at tiny sizes against real Consul and
// checks the table is well formed and the figures are sane.
func TestBench_Smoke(t *testing.T) {
	tbl, r := Run(t, Smoke(), "")
	md := tbl.Markdown()
	t.Log("\n" + md)
	checkMarkdown(t, tbl, md)

	sz := Smoke()
	if len(r.Load) != len(sz.Resolvers) {
		t.Fatalf("scenario 1: %d points, want %d", len(r.Load), len(sz.Resolvers))
	}
	first, last := r.Load[0], r.Load[len(r.Load)-1]
	for _, p := range r.Load {
		if p.OldPerMin <= 0 || p.GwsyncPerMin <= 0 || p.Lookups == 0 {
			t.Errorf("scenario 1: point %+v has zero figures", p)
		}
		if p.Failed != 0 {
			t.Errorf("scenario 1: %d gwsync lookups failed at N=%d", p.Failed, p.Resolvers)
		}
	}
	if last.OldPerMin < 2*first.OldPerMin {
		t.Errorf("scenario 1: old design %f/min at N=%d vs %f/min at N=%d: load should grow with nodes", last.OldPerMin, last.Resolvers, first.OldPerMin, first.Resolvers)
	}
	for gw, n := range r.Writes.PerCycle {
		if n != 0 {
			t.Errorf("scenario 2: %s: %v Raft entries per steady cycle, want 0", gw, n)
		}
	}
	if r.Writes.Naive < float64(sz.Services) {
		t.Errorf("scenario 2: naive syncer %v Raft entries per cycle, want at least one per service", r.Writes.Naive)
	}
	for _, l := range r.Latency {
		if len(l.Dedicated) < sz.Changes || len(l.Resolver) != len(l.Dedicated) || len(l.Floor) != len(l.Dedicated) {
			t.Errorf("scenario 3 %s: %d/%d/%d samples, want %d", l.Schedule, len(l.Dedicated), len(l.Resolver), len(l.Floor), sz.Changes)
		}
		d, f := percentiles(l.Dedicated), percentiles(l.Floor)
		if f[0] <= 0 || d[0] < f[0] || d[2] > time.Minute {
			t.Errorf("scenario 3 %s: dedicated %v, floor %v: not sane", l.Schedule, d, f)
		}
	}
	w := r.WAN
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
	rs := r.Resolver
	if rs.Resolve.NsPerOp <= 0 || rs.PickWeighted.NsPerOp <= 0 || rs.PickRR.NsPerOp <= 0 {
		t.Errorf("scenario 5: micro-benchmarks %+v", rs)
	}
	if rs.AllPublic <= 0 || rs.FirstPublic > rs.AllPublic || rs.Lookups == 0 || rs.Failed > rs.Lookups {
		t.Errorf("scenario 5: switch %+v not sane", rs)
	}
	for _, s := range r.Scale {
		if s.Wall <= 0 || s.PublicCalls == 0 || s.Txns == 0 || s.PeakRSS <= 0 || s.PeakGoroutines <= 0 || s.Raw1 <= 0 || s.Raw4 <= 0 || s.SteadyCycle <= 0 {
			t.Errorf("scenario 4: %+v has zero figures", s)
		}
		if s.Ops < float64(2*s.Instances) {
			t.Errorf("scenario 4: %v ops written for %d instances in 2 clusters", s.Ops, s.Instances)
		}
		// Steady-cycle ops are reported, not asserted: with a new
		// federation, failover order (and so failover-count meta) can
		// change while WAN coordinates settle; scenario 2 asserts 0.
		if s.SteadyOps > float64(2*s.Instances) {
			t.Errorf("scenario 4: %v ops written in steady cycles for %d instances", s.SteadyOps, s.Instances)
		}
	}
}

// checkMarkdown checks the header and that every table line has every cell.
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
	for _, s := range []string{"1", "2", "3", "4", "5", "6"} {
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
}
