package bench

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/gwsync/gwsync/test/harness"
)

// Results are every scenario's figures from one run.
type Results struct {
	Load     []LoadPoint
	Writes   WritesResult
	Latency  []Latencies
	WAN      WANResult
	Resolver ResolverResult
	// Scale holds scenarios 4, 7 and 8, which share their catalogs.
	Scale ScaleResults
}

// Run runs every scenario at sizes sz and returns the table, the charts
// and the figures. gatewayBench is a file with the gateway package's `go
// test -bench` output to include ("" for none). Scenarios 1, 2, 3 and 6
// share the base catalog and gw-a/gw-b's clusters; 5 and 4 (with 7 and 8)
// bring catalogs and clusters of their own and remove them after; the
// largest (4) runs last.
func Run(tb testing.TB, sz Sizes, gatewayBench string) (*Table, *Charts, Results) {
	tb.Helper()
	t := NewTable(ConsulVersion(tb), sz.Name)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("bench: the figures measured before the failure:\n%s", t.Markdown(nil))
		}
	})
	e := NewEnv(tb, sz)
	var r Results
	r.Load = ScenarioLoad(e, t)
	r.Writes = ScenarioWrites(e, t)
	r.Latency = ScenarioLatency(e, t)
	r.WAN = ScenarioWAN(e, t)
	r.Resolver = ScenarioResolver(e, t, gatewayBench)
	r.Scale = ScenarioScale(e, t)
	// Scenarios in files of their own add their line here.
	return t, e.Charts, r
}

// ConsulVersion returns the first line of `consul version`.
func ConsulVersion(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command(harness.ConsulBin(tb), "version").Output()
	if err != nil {
		tb.Fatalf("bench: consul version: %v", err)
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
