package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
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

// TestServer_Restart shows a restarted dedicated server keeps its address,
// comes back with an empty catalog, and that the catalog helpers and
// RaftLastIndex work against it.
func TestServer_Restart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "gw-restart")
	addr := s.HTTPAddr()
	c := s.Client(t)

	before := s.RaftLastIndex(t)
	if before == 0 {
		t.Fatal("RaftLastIndex = 0 on a started server")
	}
	s.Register(t, Instance{Node: "api-1", Address: "10.0.0.1", ID: "api-1", Service: "api", Port: 80, Status: api.HealthCritical})
	if after := s.RaftLastIndex(t); after <= before {
		t.Fatalf("RaftLastIndex after a register = %d, want > %d", after, before)
	}
	passing := func() int {
		entries, _, err := c.Health().Service("api", "", true, (&api.QueryOptions{}).WithContext(ctxT(t)))
		if err != nil {
			t.Fatalf("health/service: %v", err)
		}
		return len(entries)
	}
	if n := passing(); n != 0 {
		t.Fatalf("critical instance: %d passing, want 0", n)
	}
	s.SetStatus(t, "api-1", "api-1", "")
	if n := passing(); n != 1 {
		t.Fatalf("after SetStatus passing: %d passing, want 1", n)
	}
	s.Register(t, Instance{Node: "api-1", Address: "10.0.0.1", ID: "api-2", Service: "api", Port: 81})
	s.Deregister(t, "api-1", "api-2")
	if n := passing(); n != 1 {
		t.Fatalf("after Deregister: %d passing, want 1", n)
	}

	start := time.Now()
	s.Restart(t)
	t.Logf("measured: dedicated server restart (kill, start empty, leader): %s", time.Since(start).Round(time.Millisecond))
	if s.HTTPAddr() != addr {
		t.Fatalf("HTTPAddr after restart = %s, want %s", s.HTTPAddr(), addr)
	}
	if got := services(t, s); len(got) != 0 {
		t.Fatalf("restarted server has services %v, want none", got)
	}
	if idx := s.RaftLastIndex(t); idx == 0 {
		t.Fatal("RaftLastIndex = 0 after restart")
	}
	// A client made before the restart still works: same address.
	s.Register(t, Instance{Node: "api-9", Address: "10.0.0.9", Service: "api", Port: 80})
	if n := passing(); n != 1 {
		t.Fatalf("after restart and register: %d passing, want 1", n)
	}
	s.DeregisterNode(t, "api-9")
	if got := services(t, s); len(got) != 0 {
		t.Fatalf("after DeregisterNode: services %v, want none", got)
	}

	s.Stop(t)
	s.Stop(t) // idempotent
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("HTTP port %s accepts connections after Stop", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Stop: %v, want connection refused", err)
	}
}

// proxyClient is an API client that talks to the server through p.
func proxyClient(t *testing.T, p *Proxy) *api.Client {
	t.Helper()
	c, err := config.Cluster{Address: p.Addr(), Scheme: "http"}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProxy counts requests by path, delays them, honours cancellation,
// tracks concurrency and plays dead.
func TestProxy(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "gw-proxy")
	p := NewProxy(t, s.HTTPAddr())
	c := proxyClient(t, p)

	for range 3 {
		if _, _, err := c.Catalog().Services((&api.QueryOptions{AllowStale: true}).WithContext(ctxT(t))); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Count(PathIs("/v1/catalog/services")); got != 3 {
		t.Fatalf("catalog/services count = %d, want 3", got)
	}
	if got := p.Count(PathIs("/v1/status/leader")); got != 2 {
		t.Fatalf("status/leader count = %d, want 2", got)
	}
	if got := p.Count(nil); got != 5 {
		t.Fatalf("total count = %d, want 5", got)
	}
	if r := p.Requests()[0]; r.Method != http.MethodGet || !r.Query.Has("stale") {
		t.Fatalf("first request = %+v, want a GET with ?stale", r)
	}
	p.Reset()
	if got := p.Count(nil); got != 0 {
		t.Fatalf("count after Reset = %d", got)
	}

	const delay = 400 * time.Millisecond
	p.SetDelay(delay)
	var wg sync.WaitGroup
	took := make([]time.Duration, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t)))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("delayed request %d: %v", i, errs[i])
		}
		if took[i] < delay {
			t.Fatalf("delayed request %d took %s, want >= %s", i, took[i], delay)
		}
	}
	t.Logf("measured: 4 concurrent requests with %s delay took %v", delay, took)
	if got := p.MaxInFlight(); got != 4 {
		t.Fatalf("MaxInFlight = %d, want 4", got)
	}

	p.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("canceled request during delay: err %v after %s; want an error well before the 5s delay", err, time.Since(start))
	}
	p.SetDelay(0)

	// A blocking query in flight is cut when the proxy goes down.
	_, meta, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := c.Catalog().Services((&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second}).WithContext(context.Background()))
		blocked <- err
	}()
	Eventually(t, 5*time.Second, func() error {
		if n := p.Count(func(r Request) bool { return r.Query.Has("index") }); n != 1 {
			return fmt.Errorf("%d blocking queries seen by the proxy, want 1", n)
		}
		return nil
	})
	p.SetDown(true)
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("blocking query through a proxy set down returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query still running 5s after SetDown(true)")
	}
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err == nil {
		t.Fatal("request through a down proxy succeeded")
	}
	p.SetDown(false)
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
		t.Fatalf("request after SetDown(false): %v", err)
	}
}

func TestConsulBin(t *testing.T) {
	bin := ConsulBin(t)
	if !filepath.IsAbs(bin) {
		t.Fatalf("ConsulBin = %q, want an absolute path", bin)
	}
	if !strings.HasPrefix(os.Getenv("PATH"), filepath.Dir(bin)+string(os.PathListSeparator)) {
		t.Fatalf("PATH does not start with %s", filepath.Dir(bin))
	}

	t.Setenv(ConsulBinEnv, filepath.Join(t.TempDir(), "consul"))
	if _, err := findConsulBin(); err == nil {
		t.Fatal("findConsulBin with a missing binary: no error")
	}
	t.Setenv(ConsulBinEnv, "")
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("moduleRoot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("moduleRoot %s has no go.mod: %v", root, err)
	}
	if got, err := findConsulBin(); err != nil || got != filepath.Join(root, "bin", "consul") {
		t.Fatalf("findConsulBin without env = %q, %v; want %s", got, err, filepath.Join(root, "bin", "consul"))
	}
}

// TestStartServer_ACL starts a server with ACLs on through WithHCL and
// WithToken: the harness's own calls and Client use the token, an
// anonymous client sees nothing.
func TestStartServer_ACL(t *testing.T) {
	t.Parallel()
	const token = "3f0c5bd8-4e8c-4a8e-9a57-0d6f8a7f0001"
	s := StartServer(t, "gw-acl",
		WithHCL(`acl { enabled = true
		default_policy = "deny"
		tokens { initial_management = "`+token+`" } }`),
		WithToken(token))
	s.Register(t, Instance{Node: "acl-1", Address: "10.9.0.1", Service: "secret", Port: 1})
	if got := services(t, s); !slices.Equal(got, []string{"secret"}) {
		t.Fatalf("services with the management token = %v, want [secret]", got)
	}
	anon, err := config.Cluster{Address: s.HTTPAddr(), Scheme: "http"}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := anon.Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("anonymous catalog/services: %v", err)
	}
	if len(m) != 0 {
		t.Fatalf("anonymous catalog/services = %v, want nothing (filtered)", m)
	}
	if idx := s.RaftLastIndex(t); idx == 0 {
		t.Fatal("RaftLastIndex = 0")
	}
}
