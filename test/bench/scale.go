package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/test/harness"
)

// ScaleResult is scenario 4 at one size.
type ScaleResult struct {
	Services, Instances int
	Register            time.Duration // bulk registration into the public DCs (setup)
	Wall                time.Duration // start of `gwsync run` to both gateways' first complete sync
	PublicCalls         int           // requests through the public proxy in that time
	Txns, Ops           float64       // txns and ops written to both dedicated clusters
	OpsX                float64       // ops written to gw-x's cluster
	PeakRSS             float64       // VmHWM of the gwsync process (bytes)
	PeakGoroutines      float64       // highest go_goroutines sampled every 100 ms
	SteadyCycle         time.Duration // mean full-cycle time after the initial mirror (slower gateway)
	SteadyOps           float64       // ops written in those steady cycles
	SteadyKinds         string        // and by kind (node_set, service_set, …)
	Raw1, Raw4          float64       // raw txn ops/s into gw-x's cluster, 1 and 4 writers
}

// ScenarioScale (4) mirrors ScaleServices × ScaleInstances instances (home
// DCs round robin over three DCs) into two new dedicated clusters with
// `gwsync run` as a subprocess, then measures the raw 128-op txn throughput
// of the same dedicated Consul.
func ScenarioScale(e *Env, t *Table) []ScaleResult {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	var out []ScaleResult
	for _, n := range sz.ScaleServices {
		r := ScaleResult{Services: n, Instances: n * sz.ScaleInstances}
		prefix := fmt.Sprintf("s%d-", n)
		var insts []instance
		for i := range n {
			dc := e.DCs[i%len(e.DCs)]
			insts = append(insts, layout(fmt.Sprintf("%s%05d", prefix, i), dc, prefix, i, sz.ScaleInstances, max(20, n*sz.ScaleInstances/3/16))...)
		}
		start := time.Now()
		e.registerBulk(insts)
		r.Register = time.Since(start)

		x := harness.StartServer(tb, "gw-x", harness.WithHCL(dedicatedHCL))
		y := harness.StartServer(tb, "gw-y", harness.WithHCL(dedicatedHCL))
		e.Proxy.Reset()
		start = time.Now()
		p := startCtrl(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{prefix + "*"}, schedule: "@every 5s",
			gateways: []gwConf{{"gw-x", "dc1", x}, {"gw-y", "dc2", y}}})
		var first metrics
		harness.Eventually(tb, 25*time.Minute, func() error {
			m, err := p.scrape()
			if err != nil {
				return err
			}
			for _, g := range []string{"gw-x", "gw-y"} {
				if m.get("gwsync_sync_runs_total", `gateway="`+g+`"`, `scope="full"`, `result="success"`) < 1 {
					return fmt.Errorf("%s: no complete sync yet", g)
				}
			}
			first = m
			return nil
		})
		r.Wall = time.Since(start)
		r.PublicCalls = e.Proxy.Count(nil)
		r.Txns = first.get("gwsync_dedicated_txns_total", `result="ok"`)
		r.Ops = first.get("gwsync_dedicated_writes_total")
		r.OpsX = first.get("gwsync_dedicated_writes_total", `gateway="gw-x"`)

		// Steady state: the next complete cycle of each gateway.
		var last metrics
		harness.Eventually(tb, 15*time.Minute, func() error {
			m, err := p.scrape()
			if err != nil {
				return err
			}
			for _, g := range []string{"gw-x", "gw-y"} {
				c0 := first.get("gwsync_sync_duration_seconds_count", `gateway="`+g+`"`, `scope="full"`)
				if m.get("gwsync_sync_duration_seconds_count", `gateway="`+g+`"`, `scope="full"`) < c0+1 {
					return fmt.Errorf("%s: no steady cycle yet", g)
				}
			}
			last = m
			return nil
		})
		for _, g := range []string{"gw-x", "gw-y"} {
			l := []string{`gateway="` + g + `"`, `scope="full"`}
			dc := last.get("gwsync_sync_duration_seconds_count", l...) - first.get("gwsync_sync_duration_seconds_count", l...)
			ds := last.get("gwsync_sync_duration_seconds_sum", l...) - first.get("gwsync_sync_duration_seconds_sum", l...)
			r.SteadyCycle = max(r.SteadyCycle, time.Duration(ds/dc*float64(time.Second)))
		}
		r.SteadyOps = last.get("gwsync_dedicated_writes_total") - r.Ops
		var kinds []string
		for _, op := range []string{"node_set", "node_delete", "service_set", "service_delete", "kv_set"} {
			if d := last.get("gwsync_dedicated_writes_total", `op="`+op+`"`) - first.get("gwsync_dedicated_writes_total", `op="`+op+`"`); d > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %.0f", op, d))
			}
		}
		r.SteadyKinds = strings.Join(kinds, ", ")
		r.PeakGoroutines, _ = p.peaks()
		r.PeakRSS = p.vmHWM()
		p.stop()

		r.Raw1 = rawThroughput(tb, x, 1, sz.RawWindow)
		r.Raw4 = rawThroughput(tb, x, 4, sz.RawWindow)
		x.Stop(tb)
		y.Stop(tb)
		out = append(out, r)
		e.scaleRows(t, r)
	}
	t.Note("Scenario 4: `gwsync run` runs as a subprocess (schedule `@every 5s`, defaults otherwise: max_in_flight_per_dc 8, 128-op txns, one txn at a time per cluster) with gateways gw-x (source dc1) and gw-y (source dc2), each mirroring every selected service: two thirds of them through prepared-query failover to another DC. Peak RSS is the process's VmHWM from /proc; goroutines are the highest `go_goroutines` sampled every 100 ms. Raw throughput: 128-op txns (8 nodes × 1 node + 15 services) written into gw-x's cluster after gwsync stopped, by 1 writer (as gwsync writes) and by 4 writers, for %s each.", sz.RawWindow)
	return out
}

func (e *Env) scaleRows(t *Table, r ScaleResult) {
	size := fmt.Sprintf("%d services × %d", r.Services, r.Instances/r.Services)
	rate := r.OpsX / r.Wall.Seconds()
	best := max(r.Raw1, r.Raw4)
	t.Add(Row{Scenario: "4", Measure: size + ": initial mirror wall time (2 clusters)", Gwsync: fmtDur(r.Wall),
		Note: fmt.Sprintf("%d instances per cluster; public setup (bulk txn registration) took %s", r.Instances, fmtDur(r.Register))})
	t.Add(Row{Scenario: "4", Measure: size + ": public calls / txns / ops written (initial)", Gwsync: fmt.Sprintf("%d / %.0f / %.0f", r.PublicCalls, r.Txns, r.Ops)})
	t.Add(Row{Scenario: "4", Measure: size + ": controller peak RSS / peak goroutines", Gwsync: fmtMiB(r.PeakRSS) + " / " + fmtF(r.PeakGoroutines), Note: "subprocess VmHWM"})
	t.Add(Row{Scenario: "4", Measure: size + ": steady-state cycle time", Gwsync: fmtDur(r.SteadyCycle),
		Note: fmt.Sprintf("slower gateway, mean; ops written in the steady cycles: %.0f %s", r.SteadyOps, r.SteadyKinds)})
	if r.SteadyOps > 0 {
		t.Note("Scenario 4 (%s): the first cycles after the start wrote %.0f ops (%s) with no source change. Seen in development: updates of every failed-over instance in the first cycle after the initial mirror. The managed query fails over with `nearest_n`, so the order of failover DCs follows WAN RTT coordinates, which settle in the first seconds of a new federation, and the mirror records the failover count (`gwsync-failovers` meta) of every instance: when the order changes, every failed-over instance is rewritten. A mirror that records only the answering DC (or failover yes/no) would not churn.", size, r.SteadyOps, r.SteadyKinds)
	}
	within := "within 2×"
	if best > 2*rate {
		within = "misses the 2× target"
	}
	t.Add(Row{Scenario: "4", Measure: size + ": write rate into one dedicated cluster (txn ops/s)", Gwsync: fmtF(rate) + " (initial mirror, end to end)",
		Comparison: fmt.Sprintf("%s (raw, 1 writer) / %s (raw, 4 writers)", fmtF(r.Raw1), fmtF(r.Raw4)), Ratio: "raw " + ratio(best, rate) + " of gwsync", Note: within})
	if best > 2*rate {
		t.Note("Scenario 4 (%s) misses the target of an initial mirror within 2× of the raw txn throughput: gwsync %s ops/s end to end vs raw %s ops/s. The initial mirror's wall time is mostly reading the public side (%d prepared-query executions, 8 in flight per DC, two thirds of them cross-DC failovers) before its txns are written one at a time per cluster; pipelining writes with reads (apply each batch of 128 as soon as its services are read) and writing several txns in flight per cluster would close most of the gap.",
			size, fmtF(rate), fmtF(best), r.PublicCalls)
	}
}

// rawThroughput writes 128-op txns into srv with writers writers for
// window and returns committed ops per second.
func rawThroughput(tb testing.TB, srv *harness.Server, writers int, window time.Duration) float64 {
	tb.Helper()
	c := client(tb, srv.HTTPAddr(), writers+4)
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var ops atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				txn := make(api.TxnOps, 0, 128)
				for nd := range 8 {
					node := fmt.Sprintf("raw-%d-%d-%d-%d", writers, w, k, nd)
					txn = append(txn, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: "10.200.0.1",
						Meta: map[string]string{"external-node": "true"}}}})
					for s := range 15 {
						txn = append(txn, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{
							ID: fmt.Sprintf("raw-svc-%d-%d", s, k), Service: fmt.Sprintf("raw-svc-%d", s), Port: 8000 + s, Tags: []string{"v1"},
							Meta: map[string]string{"version": "1"}, Weights: api.AgentWeights{Passing: 1, Warning: 1}}}})
					}
				}
				cctx, ccancel := context.WithTimeout(context.Background(), callTimeout)
				ok, _, _, err := c.Txn().Txn(txn, (&api.QueryOptions{}).WithContext(cctx))
				ccancel()
				if err != nil || !ok {
					failed.Store(fmt.Errorf("raw txn: ok=%t err=%v", ok, err))
					return
				}
				ops.Add(int64(len(txn)))
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("bench: %v", err)
	}
	return float64(ops.Load()) / time.Since(start).Seconds()
}
