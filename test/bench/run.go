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
	Scale    []ScaleResult
}

// Run runs all six scenarios at sizes sz and returns the table and the
// figures. gatewayBench is a file with the gateway package's `go test
// -bench` output to include ("" for none). Scenario 5 kills gw-a's cluster,
// so it runs after 6; scenario 4 uses clusters of its own, last.
func Run(tb testing.TB, sz Sizes, gatewayBench string) (*Table, Results) {
	tb.Helper()
	t := NewTable(ConsulVersion(tb), sz.Name)
	e := NewEnv(tb, sz)
	var r Results
	r.Load = ScenarioLoad(e, t)
	r.Writes = ScenarioWrites(e, t)
	r.Latency = ScenarioLatency(e, t)
	r.WAN = ScenarioWAN(e, t)
	r.Resolver = ScenarioResolver(e, t, gatewayBench)
	r.Scale = ScenarioScale(e, t)
	return t, r
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
