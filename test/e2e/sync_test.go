package e2e

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// TestSync runs the controller's behaviours that leave the public
// federation running against one shared federation (dc1, dc2); every
// subtest has its own dedicated clusters and service names.
func TestSync(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")

	t.Run("InitialMirrorTwoClusters", func(t *testing.T) {
		g1, g2 := harness.StartServer(t, "gw1"), harness.StartServer(t, "gw2")
		in := harness.Instance{Node: "web-01", Address: "10.1.0.1", NodeMeta: map[string]string{"rack": "r1"},
			TaggedAddresses: map[string]string{"lan": "10.1.0.1"}, ID: "t1-web-1", Service: "t1-web", Port: 8080,
			Tags: []string{"v1", "blue"}, Meta: map[string]string{"team": "edge"}, ServiceAddress: "10.1.0.11",
			Weights: &api.AgentWeights{Passing: 7, Warning: 2}}
		dc1.Register(t, in)
		dc1.Register(t, inst("web-02", "t1-web", "t1-web-2", 8080))
		dc1.Register(t, inst("api-01", "t1-api", "t1-api-1", 9090, "grpc"))
		db := in // a second service on the same node keeps the node's data
		db.ID, db.Service, db.Port, db.Tags, db.Meta, db.ServiceAddress, db.Weights = "t1-db-1", "t1-db", 5432, nil, nil, "", nil
		dc1.Register(t, db)
		s := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t1-*"},
			gateways: []gw{{"gw1", "dc1", g1}, {"gw2", "dc1", g2}}}
		c, _ := s.controller(t)
		for _, g := range []string{"gw1", "gw2"} {
			res := cycle(t, c, g)
			if !res.Complete || res.Adds != 4 || res.Deletes != 0 {
				t.Fatalf("%s first cycle: complete=%v adds=%d deletes=%d errors=%v", g, res.Complete, res.Adds, res.Deletes, res.Errors)
			}
		}
		for _, srv := range []*harness.Server{g1, g2} {
			if got := ids(mustMirror(t, srv, "t1-web")); !reflect.DeepEqual(got, []string{"gwsync-dc1.web-01/t1-web-1", "gwsync-dc1.web-02/t1-web-2"}) {
				t.Fatalf("%s t1-web mirror = %v", srv.DC, got)
			}
			if got := ids(mustMirror(t, srv, "t1-api")); !reflect.DeepEqual(got, []string{"gwsync-dc1.api-01/t1-api-1"}) {
				t.Fatalf("%s t1-api mirror = %v", srv.DC, got)
			}
			// Instance data is preserved exactly, with provenance in meta.
			entries, _, err := srv.Client(t).Catalog().Service("t1-web", "", &api.QueryOptions{NodeMeta: map[string]string{"rack": "r1"}})
			if err != nil || len(entries) != 1 {
				t.Fatalf("%s: read web-01: %v (%d entries)", srv.DC, err, len(entries))
			}
			e := entries[0]
			want := map[string]any{
				"address": "10.1.0.1", "tagged": "10.1.0.1", "svcaddr": "10.1.0.11", "port": 8080, "tags": "v1,blue",
				"meta": "edge", "weights": api.Weights{Passing: 7, Warning: 2}, "dc": "dc1", "failovers": "0",
				"srcnode": "web-01", "gateway": srv.DC, "managed": "true", "external": "true",
			}
			got := map[string]any{
				"address": e.Address, "tagged": e.TaggedAddresses["lan"], "svcaddr": e.ServiceAddress, "port": e.ServicePort,
				"tags": fmt.Sprint(e.ServiceTags[0], ",", e.ServiceTags[1]), "meta": e.ServiceMeta["team"], "weights": e.ServiceWeights,
				"dc": e.NodeMeta[mirror.MetaSourceDC], "failovers": e.ServiceMeta[mirror.MetaFailovers],
				"srcnode": e.NodeMeta[mirror.MetaSourceNode], "gateway": e.NodeMeta[mirror.MetaGateway],
				"managed": e.NodeMeta[mirror.MetaManaged], "external": e.NodeMeta[mirror.MetaExternalNode],
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: mirrored web-01 = %v, want %v", srv.DC, got, want)
			}
			kv, _, err := srv.Client(t).KV().Get(mirror.MarkerKey("gwsync/", srv.DC), nil)
			if err != nil || kv == nil {
				t.Fatalf("%s: sync marker missing: %v", srv.DC, err)
			}
			m, err := mirror.DecodeMarker(kv.Value)
			if err != nil || m.Instances != 4 || m.Services != 3 || m.Generation != 1 {
				t.Fatalf("%s: marker = %+v, %v", srv.DC, m, err)
			}
		}
	})

	t.Run("AddRemoveChange", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		for i := 1; i <= 3; i++ {
			dc1.Register(t, inst(fmt.Sprintf("n%d", i), "t2-web", fmt.Sprintf("t2-web-%d", i), 80, "a"))
		}
		c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t2-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		dc1.Register(t, inst("n4", "t2-web", "t2-web-4", 80, "a"))           // added
		dc1.Deregister(t, "n1", "t2-web-1")                                  // removed
		dc1.Register(t, inst("n2", "t2-web", "t2-web-2", 81, "a"))           // port
		dc1.Register(t, inst("n3", "t2-web", "t2-web-3", 80, "a", "canary")) // tags
		res := cycle(t, c, "gw1")
		if res.Adds != 1 || res.Updates != 2 || res.Deletes != 1 || res.DeletesHeld != 0 {
			t.Fatalf("changes: adds=%d updates=%d deletes=%d held=%d (%s)", res.Adds, res.Updates, res.Deletes, res.DeletesHeld, res.HeldReason)
		}
		got := mustMirror(t, g1, "t2-web")
		want := []mirrored{
			{Node: "gwsync-dc1.n2", ID: "t2-web-2", Service: "t2-web", Port: 81, Tags: "a", SourceDC: "dc1", Failovers: "0"},
			{Node: "gwsync-dc1.n3", ID: "t2-web-3", Service: "t2-web", Port: 80, Tags: "a,canary", SourceDC: "dc1", Failovers: "0"},
			{Node: "gwsync-dc1.n4", ID: "t2-web-4", Service: "t2-web", Port: 80, Tags: "a", SourceDC: "dc1", Failovers: "0"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("mirror after changes:\n got %+v\nwant %+v", got, want)
		}
		// Meta change only.
		in := inst("n4", "t2-web", "t2-web-4", 80, "a")
		in.Meta = map[string]string{"version": "2"}
		dc1.Register(t, in)
		if res := cycle(t, c, "gw1"); res.Updates != 1 || res.Adds+res.Deletes != 0 {
			t.Fatalf("meta change: %+v", res)
		}
		// One of two services on a shared node goes: a service delete (Consul
		// needs the service name in the txn op), the node and the other stay.
		shared := inst("n3", "t2-api", "t2-api-3", 9000)
		dc1.Register(t, shared)
		if res := cycle(t, c, "gw1"); res.Adds != 1 || !res.Complete {
			t.Fatalf("second service on n3: %+v", res)
		}
		dc1.Deregister(t, "n3", "t2-api-3")
		if res := cycle(t, c, "gw1"); res.Deletes != 1 || !res.Complete || len(res.Errors) != 0 {
			t.Fatalf("removing one service of a shared node: deletes=%d complete=%v errors=%v", res.Deletes, res.Complete, res.Errors)
		}
		if got := mustMirror(t, g1, "t2-api"); len(got) != 0 {
			t.Fatalf("t2-api still mirrored after it was removed: %v", got)
		}
		if got := ids(mustMirror(t, g1, "t2-web")); len(got) != 3 {
			t.Fatalf("t2-web on the shared node lost: %v", got)
		}
		// The deleted instance's node is gone too (it had no other service).
		if _, _, err := g1.Client(t).Catalog().Node("gwsync-dc1.n1", nil); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := g1.Client(t).Catalog().Node("gwsync-dc1.n1", nil); n != nil {
			t.Fatalf("node of the removed instance still present: %+v", n.Node)
		}
	})

	t.Run("FailoverAndSwitchBack", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		dc2.Register(t, inst("far-01", "t3-pay", "t3-pay-1", 443))
		dc2.Register(t, inst("far-02", "t3-pay", "t3-pay-2", 443))
		c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t3-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		got := mustMirror(t, g1, "t3-pay")
		if len(got) != 2 || got[0].SourceDC != "dc2" || got[0].Failovers != "1" || got[0].Node != "gwsync-dc2.far-01" {
			t.Fatalf("failover mirror = %+v", got)
		}
		dc1.Register(t, inst("near-01", "t3-pay", "t3-pay-1", 443))
		res := cycle(t, c, "gw1")
		got = mustMirror(t, g1, "t3-pay")
		if len(got) != 1 || got[0].SourceDC != "dc1" || got[0].Failovers != "0" || got[0].Node != "gwsync-dc1.near-01" {
			t.Fatalf("after dc1 became healthy: mirror = %+v (result %+v)", got, res)
		}
	})

	t.Run("CriticalInstanceDisappears", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		for i := 1; i <= 3; i++ {
			dc1.Register(t, inst(fmt.Sprintf("c%d", i), "t4-svc", fmt.Sprintf("t4-svc-%d", i), 80))
		}
		dc1.Register(t, inst("solo", "t4-solo", "t4-solo-1", 80))
		c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t4-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		dc1.SetStatus(t, "c2", "t4-svc-2", api.HealthCritical)
		dc1.SetStatus(t, "solo", "t4-solo-1", api.HealthCritical) // its only instance, in every DC
		res := cycle(t, c, "gw1")
		if got := ids(mustMirror(t, g1, "t4-svc")); !reflect.DeepEqual(got, []string{"gwsync-dc1.c1/t4-svc-1", "gwsync-dc1.c3/t4-svc-3"}) {
			t.Fatalf("mirror = %v (result %+v)", got, res)
		}
		if got := mustMirror(t, g1, "t4-solo"); len(got) != 0 {
			t.Fatalf("a service with no passing instance anywhere is still mirrored: %v (kept: %v)", got, res.Kept)
		}
	})

	t.Run("SteadyStateWritesNothing", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		services := []string{"t5-a", "t5-b", "t5-c"}
		for i, s := range services {
			for j := 0; j < 3; j++ {
				in := inst(fmt.Sprintf("s%d", j), s, fmt.Sprintf("%s-%d", s, j), 1000+i, "x", "y")
				in.Meta = map[string]string{"k": "v"}
				dc1.Register(t, in)
			}
		}
		dc2.Register(t, inst("s9", "t5-far", "t5-far-1", 80)) // mirrored through failover
		c, reg := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t5-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		g1.WaitQuiet(t, waitTimeout)
		raft := g1.RaftLastIndex(t)
		paths := []string{"/v1/catalog/services"}
		for _, s := range append(services, "t5-far") {
			paths = append(paths, "/v1/health/service/"+s)
		}
		before := map[string]uint64{}
		for _, p := range paths {
			before[p] = indexOf(t, g1, p)
		}
		writes := metricSum(t, reg, "gwsync_dedicated_writes_total", map[string]string{"gateway": "gw1"})
		for i := 0; i < 4; i++ {
			res := cycle(t, c, "gw1")
			if !res.Complete || res.TxnOps != 0 {
				t.Fatalf("steady cycle %d: complete=%v ops=%d changes=%+v", i, res.Complete, res.TxnOps, res.Changes)
			}
		}
		if after := g1.RaftLastIndex(t); after != raft {
			t.Fatalf("raft last index moved in steady state: %d -> %d", raft, after)
		}
		for _, p := range paths {
			if after := indexOf(t, g1, p); after != before[p] {
				t.Fatalf("X-Consul-Index of %s moved in steady state: %d -> %d", p, before[p], after)
			}
		}
		if after := metricSum(t, reg, "gwsync_dedicated_writes_total", map[string]string{"gateway": "gw1"}); after != writes {
			t.Fatalf("gwsync_dedicated_writes_total moved in steady state: %v -> %v", writes, after)
		}
	})

	t.Run("ForeignEntriesUntouched", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		dc1.Register(t, inst("f1", "t9-web", "t9-web-1", 80))
		dc1.Register(t, inst("f2", "t9-web", "t9-web-2", 80))
		// Foreign entries: a node named like a mirrored one, a same-named
		// service on a foreign node, and an unrelated service.
		g1.Register(t, harness.Instance{Node: "gwsync-dc1.f9", Address: "10.9.9.9", ID: "t9-web-9", Service: "t9-web", Port: 1})
		g1.Register(t, harness.Instance{Node: "local-lb", Address: "10.9.9.8", ID: "t9-web-local", Service: "t9-web", Port: 2})
		g1.Register(t, harness.Instance{Node: "local-lb", Address: "10.9.9.8", ID: "other", Service: "other", Port: 3})
		foreign := func() map[string]uint64 {
			out := map[string]uint64{}
			for _, n := range []string{"gwsync-dc1.f9", "local-lb"} {
				cn, _, err := g1.Client(t).Catalog().Node(n, nil)
				if err != nil || cn == nil {
					t.Fatalf("foreign node %s: %v", n, err)
				}
				for id, s := range cn.Services {
					out[n+"/"+id] = s.ModifyIndex
				}
				out[n] = cn.Node.ModifyIndex
			}
			return out
		}
		before := foreign()
		c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t9-*", "other"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		dc1.Deregister(t, "f2", "t9-web-2")
		dc1.Register(t, inst("f1", "t9-web", "t9-web-1", 81))
		cycle(t, c, "gw1")
		dc1.Deregister(t, "f1", "t9-web-1") // t9-web now gone from the public side entirely
		cycle(t, c, "gw1")
		if after := foreign(); !reflect.DeepEqual(after, before) {
			t.Fatalf("foreign entries changed:\n before %v\n after  %v", before, after)
		}
		if got := mustMirror(t, g1, "t9-web"); len(got) != 1 || got[0].Node != "gwsync-dc1.f9" {
			// gwsync-dc1.f9 is foreign (no ownership meta), so mirrorOf's
			// node-meta filter must not list it either.
			if len(got) != 0 {
				t.Fatalf("mirror after public deletes = %+v", got)
			}
		}
	})

	t.Run("MassDeleteGuard", func(t *testing.T) {
		g1 := harness.StartServer(t, "gw1")
		for i := 0; i < 10; i++ {
			dc1.Register(t, inst(fmt.Sprintf("m%d", i), "t10-web", fmt.Sprintf("t10-web-%d", i), 80))
		}
		c, reg := setup{publicAddr: dc1.HTTPAddr(), include: []string{"t10-*"}, guardMin: 2, fraction: 0.5,
			gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
		cycle(t, c, "gw1")
		// Under the fraction: 2 of 10 go (guard min 2: not more than 2) -> applied.
		dc1.DeregisterNode(t, "m0")
		dc1.DeregisterNode(t, "m1")
		if res := cycle(t, c, "gw1"); res.Deletes != 2 || res.DeletesHeld != 0 {
			t.Fatalf("small delete: deletes=%d held=%d", res.Deletes, res.DeletesHeld)
		}
		// Above the fraction: 6 of 8 go -> held, adds still applied.
		for i := 2; i < 8; i++ {
			dc1.DeregisterNode(t, fmt.Sprintf("m%d", i))
		}
		dc1.Register(t, inst("m10", "t10-web", "t10-web-10", 80))
		res := cycle(t, c, "gw1")
		if res.DeletesHeld != 6 || res.Deletes != 0 || res.Adds != 1 || res.HeldReason == "" {
			t.Fatalf("mass delete: held=%d deletes=%d adds=%d reason=%q", res.DeletesHeld, res.Deletes, res.Adds, res.HeldReason)
		}
		if got := len(mustMirror(t, g1, "t10-web")); got != 9 {
			t.Fatalf("after held deletes the mirror has %d instances, want 9 (8 kept + 1 added)", got)
		}
		if v := metricSum(t, reg, "gwsync_deletes_held", map[string]string{"gateway": "gw1"}); v != 6 {
			t.Fatalf("gwsync_deletes_held = %v, want 6", v)
		}
		// Still held on the next cycle; applied when forced.
		if res := cycle(t, c, "gw1"); res.DeletesHeld != 6 {
			t.Fatalf("second cycle: held=%d", res.DeletesHeld)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		res, err := c.Sync(ctx, syncer.Request{Gateway: "gw1", Force: true})
		if err != nil || res.Deletes != 6 || res.DeletesHeld != 0 {
			t.Fatalf("forced: deletes=%d held=%d err=%v", res.Deletes, res.DeletesHeld, err)
		}
		if got := len(mustMirror(t, g1, "t10-web")); got != 3 {
			t.Fatalf("after forced resync the mirror has %d instances, want 3", got)
		}
	})

	t.Run("SharedPublicWork", func(t *testing.T) {
		g1, g2 := harness.StartServer(t, "gw1"), harness.StartServer(t, "gw2")
		for _, s := range []string{"t11-a", "t11-b", "t11-c"} {
			dc1.Register(t, inst("p1", s, s+"-1", 80))
		}
		proxy := harness.NewProxy(t, dc1.HTTPAddr())
		c, _ := setup{publicAddr: proxy.Addr(), include: []string{"t11-*"}, shareWindow: "10s",
			gateways: []gw{{"gw1", "dc1", g1}, {"gw2", "dc1", g2}}}.controller(t)
		executes := func(service string) int {
			return proxy.Count(func(r harness.Request) bool {
				return r.Path == "/v1/query/gwsync-"+service+"/execute"
			})
		}
		// Both gateways reconcile at the same moment, as two cron entries
		// with one schedule do.
		var wg sync.WaitGroup
		for _, g := range []string{"gw1", "gw2"} {
			wg.Go(func() { cycle(t, c, g) })
		}
		wg.Wait()
		for _, s := range []string{"t11-a", "t11-b", "t11-c"} {
			if n := executes(s); n != 1 {
				t.Fatalf("%s executed %d times for two gateways in one cycle, want 1", s, n)
			}
			for _, srv := range []*harness.Server{g1, g2} {
				if len(mustMirror(t, srv, s)) != 1 {
					t.Fatalf("%s not mirrored into %s", s, srv.DC)
				}
			}
		}
		for _, r := range proxy.Requests() {
			if r.Query.Has("index") {
				t.Fatalf("a wait index was sent: %s?%s", r.Path, r.Query.Encode())
			}
			if r.Path != "/v1/catalog/datacenters" && !r.Query.Has("stale") && r.Path != "/v1/query" {
				t.Fatalf("a public read without stale: %s?%s", r.Path, r.Query.Encode())
			}
		}
	})
}
