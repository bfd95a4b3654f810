package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// TestHostileNames: names Consul accepts but its HTTP API cannot read
// back, names with a slash, and an instance with more meta than the mirror
// can add to: each stops nothing but itself (issue 13 findings 2, 14, 15).
func TestHostileNames(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("h1", "hn-web", "hn-web-1", 80))
	dc1.Register(t, inst("h2", "..", "dotdot-1", 81))
	dc1.Register(t, inst("h3", "hn/slash", "hn-slash-1", 82))
	fat := inst("h4", "hn-web", "hn-web-fat", 83)
	fat.Meta = map[string]string{}
	for i := range 64 {
		fat.Meta[fmt.Sprintf("k%02d", i)] = "v"
	}
	dc1.Register(t, fat)
	c, reg := setup{publicAddr: dc1.HTTPAddr(), include: []string{"*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	for i := range 3 {
		res := cycle(t, c, "gw1")
		if !res.Complete {
			t.Fatalf("cycle %d incomplete: errors %v kept %v", i, res.Errors, res.Kept)
		}
		if i == 0 && len(res.Problems) < 2 {
			t.Fatalf("cycle %d reported problems %v; want the %q service and the instance with 64 meta pairs", i, res.Problems, "..")
		}
	}
	if got := ids(mustMirror(t, g1, "hn-web")); len(got) != 1 || !strings.HasSuffix(got[0], "/hn-web-1") {
		t.Fatalf("hn-web mirror = %v; want its good instance only", got)
	}
	if got := ids(mustMirror(t, g1, "hn/slash")); len(got) != 1 {
		t.Fatalf("a service with a slash in its name is not mirrored: %v", got)
	}
	if n := metricSum(t, reg, "gwsync_sync_instance_problems_total", map[string]string{"gateway": "gw1"}); n < 2 {
		t.Fatalf("gwsync_sync_instance_problems_total = %v, want the skipped instances counted", n)
	}
	if st := c.Status().Gateways[0]; !st.Synced || st.Problems < 2 {
		t.Fatalf("status: %+v", st)
	}
}

// TestMarkerNeverVouchesForAnEmptiedCluster: a dedicated cluster restarted
// empty while a slow cycle runs never gets the marker from that cycle
// (issue 13 finding 13: the marker stood over a cluster holding 1 of 302
// instances); the next cycle rewrites everything, then the marker.
func TestMarkerNeverVouchesForAnEmptiedCluster(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	const services = 60
	for i := range services {
		dc1.Register(t, inst(fmt.Sprintf("m%d", i), fmt.Sprintf("mv-%02d", i), fmt.Sprintf("mv-%02d-1", i), 80))
	}
	proxy := harness.NewProxy(t, dc1.HTTPAddr())
	c, _ := setup{publicAddr: proxy.Addr(), include: []string{"mv-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	cycle(t, c, "gw1")
	if readMarker(t, g1) == nil {
		t.Fatal("no marker after the first complete sync")
	}
	// The next cycle (of a restarted controller) adds as many services
	// again; the dedicated cluster restarts empty between two of its
	// writes. Its later adds would land in the empty cluster: without a
	// check on what the cycle read, it would end "complete" and write the
	// marker over a cluster holding a fraction of the mirror.
	for i := services; i < 2*services; i++ {
		dc1.Register(t, inst(fmt.Sprintf("m%d", i), fmt.Sprintf("mv-%02d", i), fmt.Sprintf("mv-%02d-1", i), 80))
	}
	c2, reg := setup{publicAddr: proxy.Addr(), include: []string{"mv-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	done := make(chan syncer.Result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		defer cancel()
		res, _ := c2.Sync(ctx, syncer.Request{Gateway: "gw1"})
		done <- res
	}()
	// Once the cycle's first chunk is written, slow its reads down and
	// restart the cluster between two of its writes, so the later writes
	// land in the restarted, empty cluster.
	harness.Eventually(t, waitTimeout, func() error {
		if n := metricSum(t, reg, "gwsync_dedicated_txns_total", map[string]string{"gateway": "gw1", "result": "ok"}); n < 1 {
			return fmt.Errorf("no chunk written yet")
		}
		return nil
	})
	proxy.SetDelay(time.Second)
	g1.Restart(t)
	proxy.SetDelay(0)
	res := <-done
	t.Logf("cycle across the restart: complete=%v errors=%v", res.Complete, res.Errors)
	if res.Complete {
		t.Fatalf("a cycle across a restart of its dedicated cluster claims to be complete: %+v", res)
	}
	if m := readMarker(t, g1); m != nil {
		t.Fatalf("the marker vouches for a cluster that restarted empty mid-cycle: %+v", m)
	}
	res = cycle(t, c2, "gw1")
	if !res.Complete || res.MirroredInstances != 2*services {
		t.Fatalf("cycle after the restart: complete=%v instances=%d errors=%v", res.Complete, res.MirroredInstances, res.Errors)
	}
	if m := readMarker(t, g1); m == nil || m.Instances != 2*services {
		t.Fatalf("marker after the rewrite: %+v", m)
	}
}

// TestFailingDCBacksOff: a failover DC that is down costs a few requests,
// not one per service per cycle (issue 13 finding 16: about 2,400 failures
// in 20 s), and its dc_up gauge says so.
func TestFailingDCBacksOff(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	g1 := harness.StartServer(t, "gw1")
	for i := range 20 {
		dc1.Register(t, inst(fmt.Sprintf("b%d", i), fmt.Sprintf("bo-%02d", i), fmt.Sprintf("bo-%02d-1", i), 80))
	}
	proxy := harness.NewProxy(t, dc1.HTTPAddr())
	c, reg := setup{publicAddr: proxy.Addr(), include: []string{"bo-*"}, gateways: []gw{{"gw1", "dc1", g1}}, schedule: "@every 1s",
		extra: "retry {\n  min_backoff = \"1s\"\n  max_backoff = \"8s\"\n}\n"}.controller(t)
	runController(t, c)
	dc2.Stop(t)
	proxy.Reset()
	runs := func() float64 {
		return metricSum(t, reg, "gwsync_sync_runs_total", map[string]string{"gateway": "gw1", "scope": "full"})
	}
	before := runs()
	harness.Eventually(t, 2*waitTimeout, func() error {
		if n := runs() - before; n < 10 {
			return fmt.Errorf("%v full cycles since dc2 stopped, want 10", n)
		}
		return nil
	})
	catalogs := proxy.Count(func(r harness.Request) bool {
		return r.Path == "/v1/catalog/services" && r.Query.Get("dc") == "dc2"
	})
	t.Logf("catalog reads of the down DC in 10 full cycles: %d", catalogs)
	if catalogs > 6 {
		t.Fatalf("%d catalog reads of a down DC in 10 cycles; want a backoff (1s, 2s, 4s, 8s: a few)", catalogs)
	}
	if up := metricSum(t, reg, "gwsync_public_dc_up", map[string]string{"dc": "dc2"}); up != 0 {
		t.Fatalf("gwsync_public_dc_up{dc=dc2} = %v while dc2 is down", up)
	}
	if st := c.Status().Gateways[0]; !st.Synced {
		t.Fatalf("status: %+v", st)
	}
}

// TestSteadyCycleReadsLittle: a full reconcile of an unchanged mirror reads
// the dedicated cluster with a few requests, not one per service (issue
// 14: the cheapest correct read); an edit made by hand moves the catalog's
// indexes, so the next cycle rereads everything and repairs it.
func TestSteadyCycleReadsLittle(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	const services = 50
	for i := range services {
		dc1.Register(t, inst(fmt.Sprintf("s%d", i), fmt.Sprintf("sr-%02d", i), fmt.Sprintf("sr-%02d-1", i), 80))
	}
	g1.WaitQuiet(t, waitTimeout) // a fresh server's own catalog writes would move the indexes
	proxy := harness.NewProxy(t, g1.HTTPAddr())
	extra := "gateway \"gw1\" {\n  source_datacenter = \"dc1\"\n  schedule = \"@every 1h\"\n  dedicated {\n    address = \"" + proxy.Addr() + "\"\n  }\n}\n"
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"sr-*"}, extra: extra}.controller(t)
	if res := cycle(t, c, "gw1"); !res.Complete || res.Adds != services {
		t.Fatalf("first cycle: %+v", res)
	}
	proxy.Reset()
	if res := cycle(t, c, "gw1"); !res.Complete || res.TxnOps != 0 {
		t.Fatalf("steady cycle: %+v", res)
	}
	n := len(proxy.Requests())
	t.Logf("a steady full cycle of %d services sent %d requests to the dedicated cluster", services, n)
	if n > 5 {
		for _, r := range proxy.Requests() {
			t.Logf("  %s %s?%s", r.Method, r.Path, r.Query.Encode())
		}
		t.Fatalf("%d requests to the dedicated cluster for a steady cycle of %d services, want a few", n, services)
	}
	// By hand: a port changed in the mirror.
	reg := g1.Client(t).Catalog()
	cs, _, err := reg.Service("sr-07", "", nil)
	if err != nil || len(cs) != 1 {
		t.Fatalf("read mirrored sr-07: %v %d", err, len(cs))
	}
	e := cs[0]
	if _, err := reg.Register(&api.CatalogRegistration{Node: e.Node, Address: e.Address, SkipNodeUpdate: true,
		Service: &api.AgentService{ID: e.ServiceID, Service: e.ServiceName, Port: 9999, Meta: e.ServiceMeta, Weights: api.AgentWeights(e.ServiceWeights)}}, nil); err != nil {
		t.Fatalf("edit the mirror by hand: %v", err)
	}
	if res := cycle(t, c, "gw1"); res.Updates != 1 {
		t.Fatalf("the cycle after a hand edit: %+v; want it repaired", res)
	}
	if m := mustMirror(t, g1, "sr-07"); len(m) != 1 || m[0].Port != 80 {
		t.Fatalf("sr-07 after the repair: %+v", m)
	}
}
