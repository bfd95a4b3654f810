package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
	t.Cleanup(cancel)
	return ctx
}

func datacenters(t *testing.T, s *Server) []string {
	t.Helper()
	var got []string
	if _, err := s.Client(t).Raw().Query("/v1/catalog/datacenters", &got, (&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
		t.Fatalf("catalog/datacenters on %s: %v", s.DC, err)
	}
	slices.Sort(got)
	return got
}

// services returns the catalog's service names, without Consul's own.
func services(t *testing.T, s *Server) []string {
	t.Helper()
	m, _, err := s.Client(t).Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("catalog/services on %s: %v", s.DC, err)
	}
	var out []string
	for name := range m {
		if name != "consul" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func executePQ(t *testing.T, s *Server, name string) (*api.PreparedQueryExecuteResponse, time.Duration, error) {
	t.Helper()
	start := time.Now()
	resp, _, err := s.Client(t).PreparedQuery().Execute(name, (&api.QueryOptions{AllowStale: true}).WithContext(ctxT(t)))
	return resp, time.Since(start), err
}

// TestFederation_PreparedQueryFailover starts a two-DC federation and two
// dedicated servers, and records how a template prepared query fails over
// across the WAN, what it answers when the other DC is down, and that a
// restarted DC comes back empty and federated.
func TestFederation_PreparedQueryFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	fed := StartFederation(t, "dc1", "dc2")
	t.Logf("measured: federation start (2 DCs, WAN-joined, cross-DC reads working): %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	gwA := StartServer(t, "gw-a")
	t.Logf("measured: dedicated server start: %s", time.Since(start).Round(time.Millisecond))
	gwB := StartServer(t, "gw-b")

	if got, want := datacenters(t, fed.Server("dc1")), []string{"dc1", "dc2"}; !slices.Equal(got, want) {
		t.Fatalf("dc1 sees DCs %v, want %v", got, want)
	}
	for _, s := range []*Server{gwA, gwB} {
		if got, want := datacenters(t, s), []string{s.DC}; !slices.Equal(got, want) {
			t.Fatalf("dedicated %s sees DCs %v, want only %v", s.DC, got, want)
		}
	}

	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	dc2.Register(t, Instance{Node: "web-dc2-1", Address: "10.2.0.1", ID: "web-1", Service: "web", Port: 8080, Tags: []string{"v1"}})

	_, _, err := dc1.Client(t).PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name:     "gwsync-",
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service: api.ServiceQuery{
			Service:     "${name.suffix}",
			OnlyPassing: true,
			Failover:    api.QueryFailoverOptions{NearestN: 3},
		},
	}, (&api.WriteOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("create template query in dc1: %v", err)
	}

	start = time.Now()
	Eventually(t, 10*time.Second, func() error {
		resp, _, err := executePQ(t, dc1, "gwsync-web")
		if err != nil {
			return err
		}
		if resp.Datacenter != "dc2" || resp.Failovers != 1 || len(resp.Nodes) != 1 {
			return fmt.Errorf("answer from %q, failovers %d, %d nodes; want dc2, 1, 1", resp.Datacenter, resp.Failovers, len(resp.Nodes))
		}
		if got := resp.Nodes[0].Service.ID; got != "web-1" {
			return fmt.Errorf("service ID %q, want web-1", got)
		}
		return nil
	})
	t.Logf("measured: NearestN failover answered from dc2 %s after the query was created", time.Since(start).Round(time.Millisecond))

	// An explicit failover list works as well as NearestN.
	_, _, err = dc1.Client(t).PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name: "web-explicit",
		Service: api.ServiceQuery{
			Service:     "web",
			OnlyPassing: true,
			Failover:    api.QueryFailoverOptions{Datacenters: []string{"dc2"}},
		},
	}, (&api.WriteOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("create explicit query in dc1: %v", err)
	}
	resp, _, err := executePQ(t, dc1, "web-explicit")
	if err != nil || resp.Datacenter != "dc2" || resp.Failovers != 1 || len(resp.Nodes) != 1 {
		t.Fatalf("Failover.Datacenters [dc2]: execute = %+v, %v; want 1 node from dc2 after 1 failover", resp, err)
	}

	// The instance turns critical: OnlyPassing drops it, still from dc2.
	dc2.SetStatus(t, "web-dc2-1", "web-1", api.HealthCritical)
	Eventually(t, 5*time.Second, func() error {
		resp, _, err := executePQ(t, dc1, "gwsync-web")
		if err != nil {
			return err
		}
		if len(resp.Nodes) != 0 {
			return fmt.Errorf("%d nodes for a critical instance, want 0", len(resp.Nodes))
		}
		return nil
	})
	dc2.SetStatus(t, "web-dc2-1", "web-1", api.HealthPassing)

	dc2.Stop(t)
	checkDown := func(when string) {
		t.Helper()
		for _, q := range []string{"gwsync-web", "web-explicit"} {
			resp, took, err := executePQ(t, dc1, q)
			if err != nil {
				t.Fatalf("%s: execute %s in dc1: %v", when, q, err)
			}
			t.Logf("fact: %s: execute %s in dc1 answered in %s: HTTP 200, datacenter %q, failovers %d, nodes %d",
				when, q, took.Round(time.Millisecond), resp.Datacenter, resp.Failovers, len(resp.Nodes))
			if len(resp.Nodes) != 0 {
				t.Fatalf("%s: %s got %d nodes, want 0", when, q, len(resp.Nodes))
			}
		}
	}
	checkDown("dc2 just killed")
	start = time.Now()
	Eventually(t, 15*time.Second, func() error {
		if err := dc1.wanAlive(map[string]*Server{"dc2": dc2}); err == nil {
			return errors.New("dc1 still sees dc2 alive")
		}
		return nil
	})
	t.Logf("measured: dc1 gossip saw dc2 not alive %s after the kill", time.Since(start).Round(time.Millisecond))
	checkDown("dc2 failed in gossip")
	if got := datacenters(t, dc1); !slices.Contains(got, "dc2") {
		t.Logf("fact: dc1 no longer lists dc2 while it is down: %v", got)
	} else {
		t.Logf("fact: dc1 still lists dc2 in catalog/datacenters while it is down")
	}

	start = time.Now()
	fed.Restart(t, "dc2")
	t.Logf("measured: federation restart of dc2 (empty, re-joined, converged): %s", time.Since(start).Round(time.Millisecond))
	if got := services(t, dc2); len(got) != 0 {
		t.Fatalf("restarted dc2 has services %v, want none", got)
	}
	resp, _, err = executePQ(t, dc1, "gwsync-web")
	if err != nil || len(resp.Nodes) != 0 {
		t.Fatalf("after restart of dc2: execute = %+v, %v; want no nodes", resp, err)
	}
	dc2.Register(t, Instance{Node: "web-dc2-2", Address: "10.2.0.2", ID: "web-2", Service: "web", Port: 8080})
	Eventually(t, 10*time.Second, func() error {
		resp, _, err := executePQ(t, dc1, "gwsync-web")
		if err != nil {
			return err
		}
		if resp.Datacenter != "dc2" || len(resp.Nodes) != 1 || resp.Nodes[0].Service.ID != "web-2" {
			return fmt.Errorf("answer from %q with %d nodes; want web-2 from dc2", resp.Datacenter, len(resp.Nodes))
		}
		return nil
	})
}

// TestStartFederation_ThreeDCs restarts the DC the others joined through
// and checks the federation converges again.
func TestStartFederation_ThreeDCs(t *testing.T) {
	t.Parallel()
	start := time.Now()
	fed := StartFederation(t, "east", "west", "north")
	t.Logf("measured: federation start (3 DCs): %s", time.Since(start).Round(time.Millisecond))
	if fed.Server("south") != nil {
		t.Fatal("Server of a DC not in the federation is not nil")
	}
	if got, want := fed.DCs(), []string{"east", "west", "north"}; !slices.Equal(got, want) {
		t.Fatalf("DCs = %v, want %v", got, want)
	}
	fed.Server("east").Register(t, Instance{Node: "n1", Address: "10.1.0.1", Service: "s", Port: 1})
	fed.Restart(t, "east")
	for _, dc := range fed.DCs() {
		if got := datacenters(t, fed.Server(dc)); !slices.Equal(got, []string{"east", "north", "west"}) {
			t.Fatalf("%s sees DCs %v after restarting east", dc, got)
		}
	}
	// West reads east's (now empty) catalog across the WAN.
	m, _, err := fed.Server("west").Client(t).Catalog().Services((&api.QueryOptions{Datacenter: "east"}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("catalog/services?dc=east from west: %v", err)
	}
	if _, ok := m["s"]; ok {
		t.Fatalf("restarted east still has service s: %v", m)
	}
}
