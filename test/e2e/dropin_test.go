package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// localQuery executes a prepared query on a dedicated cluster and returns
// "address:port" of every instance, sorted.
func localQuery(t *testing.T, srv *harness.Server, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, _, err := srv.Client(t).PreparedQuery().Execute(name, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return endpoints(resp), nil
}

func endpoints(resp *api.PreparedQueryExecuteResponse) []string {
	var out []string
	for _, n := range resp.Nodes {
		addr := n.Service.Address
		if addr == "" {
			addr = n.Node.Address
		}
		out = append(out, net.JoinHostPort(addr, strconv.Itoa(n.Service.Port)))
	}
	sort.Strings(out)
	return out
}

// dnsResolver asks a Consul server's DNS interface (UDP) only.
func dnsResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// TestDropIn_LocalQuery: the prepared-query name a gateway executes today
// answers from its dedicated cluster, over HTTP and DNS, exactly as the
// public query does (here through failover: the service lives in dc2 only).
func TestDropIn_LocalQuery(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	g1 := harness.StartServer(t, "gw1")
	for i, port := range []int{7001, 7002} {
		in := inst(fmt.Sprintf("far%d", i), "di-far", fmt.Sprintf("di-far-%d", i), port)
		in.Address = fmt.Sprintf("10.7.0.%d", i+1)
		dc2.Register(t, in)
	}
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"di-*"}, gateways: []gw{{"gw1", "dc1", g1}}}.controller(t)
	res := cycle(t, c, "gw1")
	if !res.Complete || res.Adds != 2 {
		t.Fatalf("first cycle: %+v", res)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	pub, _, err := dc1.Client(t).PreparedQuery().Execute("gwsync-di-far", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || pub.Datacenter != "dc2" {
		t.Fatalf("public query: %v (answered by %q)", err, pub.Datacenter)
	}
	want := endpoints(pub)
	got, err := localQuery(t, g1, "gwsync-di-far")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("local prepared query over HTTP = %v, %v; the public query answers %v", got, err, want)
	}
	r := dnsResolver(g1.DNSAddr())
	_, srvs, err := r.LookupSRV(ctx, "", "", "gwsync-di-far.query.consul")
	if err != nil {
		t.Fatalf("DNS SRV: %v", err)
	}
	var ports []string
	for _, s := range srvs {
		ports = append(ports, strconv.Itoa(int(s.Port)))
	}
	sort.Strings(ports)
	if !slices.Equal(ports, []string{"7001", "7002"}) {
		t.Fatalf("DNS SRV ports = %v, want the mirrored ports 7001, 7002", ports)
	}
	addrs, err := r.LookupHost(ctx, "gwsync-di-far.query.consul")
	sort.Strings(addrs)
	if err != nil || !slices.Equal(addrs, []string{"10.7.0.1", "10.7.0.2"}) {
		t.Fatalf("DNS A = %v, %v; want the mirrored addresses", addrs, err)
	}
}

// TestDropIn_TemplateLifecycle: the local template is written once, not
// rewritten by a restarted controller, and after the dedicated cluster
// restarts empty it comes back only with a complete sync: until then a
// gateway gets "query not found", never an empty answer.
func TestDropIn_TemplateLifecycle(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("l1", "dl-web", "dl-web-1", 80))
	s := setup{publicAddr: dc1.HTTPAddr(), include: []string{"dl-*"}, gateways: []gw{{"gw1", "dc1", g1}}}
	c, _ := s.controller(t)
	cycle(t, c, "gw1")
	if got, err := localQuery(t, g1, "gwsync-dl-web"); err != nil || len(got) != 1 {
		t.Fatalf("local query after the first sync: %v, %v", got, err)
	}
	g1.WaitQuiet(t, waitTimeout)
	raft := g1.RaftLastIndex(t)
	c2, _ := s.controller(t) // a restarted controller
	if res := cycle(t, c2, "gw1"); !res.Complete || res.TxnOps != 0 {
		t.Fatalf("restarted controller's first cycle: %+v", res)
	}
	if after := g1.RaftLastIndex(t); after != raft {
		t.Fatalf("a restarted controller wrote to an unchanged mirror (template, marker or catalog): raft %d -> %d", raft, after)
	}

	dc1.Stop(t)
	g1.Restart(t)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		_, _ = c2.Sync(ctx, syncer.Request{Gateway: "gw1"})
		cancel()
		if _, err := localQuery(t, g1, "gwsync-dl-web"); !isNotFound(err) {
			t.Fatalf("local query on an unsynced (restarted, empty) cluster: %v; want query not found", err)
		}
	}
	fed.Restart(t, "dc1")
	dc1.Register(t, inst("l1", "dl-web", "dl-web-1", 80))
	if res := cycle(t, c2, "gw1"); !res.Complete {
		t.Fatalf("cycle after recovery: %+v", res)
	}
	if got, err := localQuery(t, g1, "gwsync-dl-web"); err != nil || len(got) != 1 {
		t.Fatalf("local query after the complete sync: %v, %v", got, err)
	}
}

// TestDropIn_PerGatewaySelection: two gateways on one source DC select
// different services; each mirrors exactly its own, and a service both
// select is executed once per share window.
func TestDropIn_PerGatewaySelection(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1, g2 := harness.StartServer(t, "gw1"), harness.StartServer(t, "gw2")
	for _, name := range []string{"ps-a", "ps-b", "ps-common"} {
		dc1.Register(t, inst("p1", name, name+"-1", 80))
	}
	proxy := harness.NewProxy(t, dc1.HTTPAddr())
	extra := `gateway "gw1" {
  source_datacenter = "dc1"
  schedule = "@every 1h"
  services {
    include = ["ps-a", "ps-common"]
  }
  dedicated {
    address = "` + g1.HTTPAddr() + `"
  }
}
gateway "gw2" {
  source_datacenter = "dc1"
  schedule = "@every 1h"
  services {
    include = ["ps-b*", "ps-common"]
  }
  dedicated {
    address = "` + g2.HTTPAddr() + `"
  }
}
`
	c, _ := setup{publicAddr: proxy.Addr(), include: []string{"ps-*"}, shareWindow: "10s", extra: extra}.controller(t)
	var wg sync.WaitGroup
	for _, g := range []string{"gw1", "gw2"} {
		wg.Go(func() { cycle(t, c, g) })
	}
	wg.Wait()
	for srv, want := range map[*harness.Server][]string{g1: {"ps-a", "ps-common"}, g2: {"ps-b", "ps-common"}} {
		for _, name := range []string{"ps-a", "ps-b", "ps-common"} {
			n := len(mustMirror(t, srv, name))
			if (n == 1) != slices.Contains(want, name) {
				t.Fatalf("%s mirrors %d instances of %s; it selects %v", srv.DC, n, name, want)
			}
		}
	}
	for _, st := range c.Status().Gateways {
		want := map[string][]string{"gw1": {"ps-a", "ps-common"}, "gw2": {"ps-b*", "ps-common"}}[st.Name]
		if !slices.Equal(st.Selection.Include, want) {
			t.Fatalf("status of %s shows selection %v, want include %v", st.Name, st.Selection, want)
		}
	}
	if n := proxy.Count(func(r harness.Request) bool { return r.Path == "/v1/query/gwsync-ps-common/execute" }); n != 1 {
		t.Fatalf("ps-common executed %d times for two gateways in one share window, want 1", n)
	}
}

func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == 404
}

// TestDropIn_CatchAllTemplate: with query_prefix = "" the local template
// is Consul's catch-all: a gateway that executes the bare service name
// (over HTTP, or <service>.query.consul over DNS) is answered from the
// mirror.
func TestDropIn_CatchAllTemplate(t *testing.T) {
	fed := harness.StartFederation(t, "dc1")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	in := inst("ca1", "ca-web", "ca-web-1", 7101)
	in.Address = "10.7.1.1"
	dc1.Register(t, in)
	extra := "gateway \"gw1\" {\n  source_datacenter = \"dc1\"\n  query_prefix = \"\"\n  dedicated {\n    address = \"" + g1.HTTPAddr() + "\"\n  }\n}\n"
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"ca-*"}, extra: extra}.controller(t)
	if res := cycle(t, c, "gw1"); !res.Complete || res.Adds != 1 {
		t.Fatalf("first cycle: %+v", res)
	}
	got, err := localQuery(t, g1, "ca-web")
	if err != nil || !slices.Equal(got, []string{"10.7.1.1:7101"}) {
		t.Fatalf("catch-all template over HTTP = %v, %v; want the mirrored instance", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	addrs, err := dnsResolver(g1.DNSAddr()).LookupHost(ctx, "ca-web.query.consul")
	if err != nil || !slices.Equal(addrs, []string{"10.7.1.1"}) {
		t.Fatalf("catch-all template over DNS = %v, %v; want the mirrored address", addrs, err)
	}
	// A service gwsync does not select is not in the mirror: empty.
	if got, err := localQuery(t, g1, "consul"); err != nil || len(got) != 0 {
		t.Fatalf("an unselected service = %v, %v; want an empty answer", got, err)
	}
}
