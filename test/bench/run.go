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

// Inputs are results of benchmarks run apart that a run includes: files
// with their `go test -bench` output ("" for none).
type Inputs struct {
	// GatewayBench: the gateway package's micro-benchmarks (scenario 5).
	GatewayBench string
	// Takeover: BenchmarkTakeover (scenario 9).
	Takeover string
}

// Run runs every scenario at sizes sz and returns the table, the charts
// and the figures. Scenarios 1, 2, 3 and 6 share the base catalog and
// gw-a/gw-b's clusters; 5 and 4 (with 7 and 8) bring catalogs and clusters
// of their own and remove them after; the largest (4) runs last.
func Run(tb testing.TB, sz Sizes, in Inputs) (*Table, *Charts, Results) {
	tb.Helper()
	takeover := parseTakeover(tb, in.Takeover) // a missing figure fails the run now, not in 30 minutes
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
	r.Resolver = ScenarioResolver(e, t, in.GatewayBench)
	r.Scale = ScenarioScale(e, t)
	takeoverRows(e, t, takeover)
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
