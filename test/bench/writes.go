package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/bench/chartspec"
	"github.com/gwsync/gwsync/test/harness"
)

// WritesResult is scenario 2: Raft entries per steady cycle.
type WritesResult struct {
	Cycles int
	// OwnOps is what gwsync itself wrote in the steady cycles (its
	// gwsync_dedicated_writes_total), both clusters together.
	OwnOps float64
	// PerCycle maps a dedicated cluster (gw-a, gw-b) to gwsync's Raft
	// entries per cycle; Naive is the naive syncer's on the same data.
	PerCycle map[string]float64
	Naive    float64
	// NaiveWrites is the naive syncer's register calls per cycle.
	NaiveWrites float64
}

// ScenarioWrites (2) runs steady cycles of gwsync against two dedicated
// clusters and of a naive re-register-everything syncer against a third,
// on the same public data, counting Raft entries (agent/self
// last_log_index) per cycle.
func ScenarioWrites(e *Env, t *Table) WritesResult {
	tb := e.TB
	tb.Helper()
	sz := e.Sizes
	ctrl := controller(tb, ctrlConf{public: e.Proxy.Addr(), include: []string{"svc-*"}, manual: true, noEvents: true,
		gateways: []gwConf{{name: "gw-a", dc: "dc1", srv: e.GwA}, {name: "gw-b", dc: "dc2", srv: e.GwB}}})
	reg := ctrl.reg
	res := WritesResult{Cycles: sz.SteadyCycles, PerCycle: map[string]float64{}}
	for _, g := range []struct {
		name string
		srv  *harness.Server
	}{{"gw-a", e.GwA}, {"gw-b", e.GwB}} {
		// Warm-up, not counted: brings the mirror up to date and lets this
		// new controller write its marker once.
		syncUntilComplete(tb, ctrl, g.name)
		g.srv.WaitQuiet(tb, time.Minute)
		before := g.srv.RaftLastIndex(tb)
		opsBefore := gathered(tb, reg).get("gwsync_dedicated_writes_total", `gateway="`+g.name+`"`)
		for range sz.SteadyCycles {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			r, err := ctrl.Sync(ctx, syncer.Request{Gateway: g.name})
			cancel()
			if err != nil || !r.Complete {
				tb.Fatalf("bench: steady cycle of %s: %v %v", g.name, err, r.Errors)
			}
		}
		res.PerCycle[g.name] = float64(g.srv.RaftLastIndex(tb)-before) / float64(sz.SteadyCycles)
		res.OwnOps += gathered(tb, reg).get("gwsync_dedicated_writes_total", `gateway="`+g.name+`"`) - opsBefore
	}

	naiveSrv := harness.StartServer(tb, "gw-naive")
	naiveSrv.WaitQuiet(tb, time.Minute)
	n := &naiveSyncer{public: client(tb, e.Proxy.Addr(), -1, 0), dedicated: naiveSrv.Client(tb), services: e.Base.services, dc: "dc1"}
	if _, err := n.cycle(); err != nil { // initial mirror, not counted
		tb.Fatalf("bench: naive syncer: %v", err)
	}
	before := naiveSrv.RaftLastIndex(tb)
	writes := 0
	for range sz.SteadyCycles {
		w, err := n.cycle()
		if err != nil {
			tb.Fatalf("bench: naive syncer: %v", err)
		}
		writes += w
	}
	res.Naive = float64(naiveSrv.RaftLastIndex(tb)-before) / float64(sz.SteadyCycles)
	res.NaiveWrites = float64(writes) / float64(sz.SteadyCycles)
	naiveSrv.Stop(tb)

	for _, g := range []string{"gw-a", "gw-b"} {
		t.Add(Row{Scenario: "2", Measure: fmt.Sprintf("Raft entries per steady cycle, dedicated cluster %s", g),
			Gwsync: fmtF(res.PerCycle[g]), Comparison: fmtF(res.Naive) + " (naive re-register)",
			Ratio: ratioOrTarget(res.PerCycle[g], res.Naive),
			Note:  fmt.Sprintf("target 0; %d cycles after a warm-up; naive = %s catalog registers/cycle", sz.SteadyCycles, fmtF(res.NaiveWrites))})
	}
	if res.PerCycle["gw-a"] > 0 || res.PerCycle["gw-b"] > 0 {
		t.Note("Scenario 2: the Raft index moved in steady state (gw-a %s, gw-b %s entries per cycle) while gwsync itself wrote %s ops (its `gwsync_dedicated_writes_total`). Entries gwsync did not write are Consul's own (a server appends Raft entries for its own node and coordinate updates on its own timers).", fmtF(res.PerCycle["gw-a"]), fmtF(res.PerCycle["gw-b"]), fmtF(res.OwnOps))
	}
	t.Note("Scenario 2: the naive syncer executes the same prepared queries and re-registers every instance each cycle with one `catalog/register` per instance, as a simple syncer does; Consul skips unchanged objects in its state store but still appends a Raft entry per write. gwsync diffs first and writes nothing: its sync marker is rewritten only with a change (the controller's heartbeat refreshes it once per `marker_interval`, 1 min by default, apart from cycles; it does not run here). A steady cycle reads the dedicated cluster with two small index reads when nothing moved there.")
	e.Charts.Add(chartspec.Chart{File: chartFile("raft"), Title: "Raft entries per steady cycle (dedicated cluster)", Scenario: "2", Kind: chartspec.Bars,
		Y: chartspec.Axis{Label: "Raft entries per cycle"}, Categories: []string{"gw-a (source dc1)", "gw-b (source dc2)"},
		Series: []chartspec.Series{{Name: "gwsync", Y: []float64{res.PerCycle["gw-a"], res.PerCycle["gw-b"]}}, {Name: "naive re-register", Y: []float64{res.Naive, res.Naive}}}})
	return res
}

func ratioOrTarget(gw, naive float64) string {
	if gw == 0 {
		return "naive writes " + fmtF(naive) + "/cycle, gwsync none"
	}
	return "naive " + ratio(naive, gw) + " of gwsync"
}

// naiveSyncer is the comparison of scenario 2: every cycle it executes the
// prepared query of every service and re-registers every instance.
type naiveSyncer struct {
	public, dedicated *api.Client
	services          []string
	dc                string
}

func (n *naiveSyncer) cycle() (writes int, err error) {
	for _, svc := range n.services {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		resp, _, err := n.public.PreparedQuery().Execute("gwsync-"+svc, (&api.QueryOptions{Datacenter: n.dc, AllowStale: true}).WithContext(ctx))
		cancel()
		if err != nil {
			return writes, fmt.Errorf("execute %s: %w", svc, err)
		}
		for _, e := range resp.Nodes {
			dc := e.Node.Datacenter
			reg := &api.CatalogRegistration{
				Node: "naive-" + dc + "." + e.Node.Node, Address: e.Node.Address,
				NodeMeta: map[string]string{"external-node": "true", "source-dc": dc},
				Service:  e.Service,
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			_, err := n.dedicated.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx))
			cancel()
			if err != nil {
				return writes, fmt.Errorf("register %s: %w", e.Service.ID, err)
			}
			writes++
		}
	}
	return writes, nil
}
