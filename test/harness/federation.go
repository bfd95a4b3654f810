package harness

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// FederationTimeout bounds how long StartFederation and Federation.Restart
// wait for every DC to see every other and to answer cross-DC requests.
const FederationTimeout = 30 * time.Second

// Federation is a WAN-federated set of one-server DCs: a "public" Consul.
type Federation struct {
	dcs     []string
	servers map[string]*Server
}

// StartFederation starts one server per DC (in parallel), WAN-joins them
// and returns only when every DC lists all DCs in /v1/catalog/datacenters
// and a cross-DC request (catalog/services?dc=<other>) succeeds from every
// DC to every other. All servers are killed through t.Cleanup.
func StartFederation(t testing.TB, dcs ...string) *Federation {
	t.Helper()
	return StartFederationWith(t, dcs)
}

// StartFederationWith is StartFederation with options applied to every
// server (WithACL, WithTLS, WithHCL...). With ACLs, the first DC is the
// ACL primary: every server names it as primary_datacenter, the others
// replicate its policies and tokens (see WaitACLReplicated).
func StartFederationWith(t testing.TB, dcs []string, opts ...Option) *Federation {
	t.Helper()
	if len(dcs) == 0 {
		t.Fatal("harness: StartFederation needs at least one DC")
	}
	f := &Federation{dcs: slices.Clone(dcs), servers: make(map[string]*Server, len(dcs))}
	for _, dc := range dcs {
		if _, dup := f.servers[dc]; dup {
			t.Fatalf("harness: StartFederation: DC %q given twice", dc)
		}
		s := newServer(t, dc, opts...)
		if s.acl != nil {
			s.acl.primary = dcs[0]
		}
		f.servers[dc] = s
	}
	errs := make([]error, len(dcs))
	var wg sync.WaitGroup
	for i, dc := range dcs {
		wg.Go(func() { errs[i] = f.servers[dc].start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("harness: start federation: %v", err)
	}
	first := f.servers[dcs[0]]
	for _, dc := range dcs[1:] {
		if err := f.servers[dc].joinWAN(first.WANAddr()); err != nil {
			t.Fatalf("harness: federation: %v", err)
		}
	}
	if err := poll(FederationTimeout, f.federated); err != nil {
		t.Fatalf("harness: federation %v not converged within %s: %v", dcs, FederationTimeout, err)
	}
	return f
}

// DCs returns the federation's datacenters in the order given at start.
func (f *Federation) DCs() []string { return slices.Clone(f.dcs) }

// Server returns the server of datacenter dc; nil if dc is not a member.
func (f *Federation) Server(dc string) *Server { return f.servers[dc] }

// Restart replaces dc's server with a new, empty one on the same ports,
// re-joins it to the WAN and waits until the federation has converged
// again (every DC sees every other and cross-DC requests work). Every other
// DC must be running.
func (f *Federation) Restart(t testing.TB, dc string) {
	t.Helper()
	s := f.servers[dc]
	if s == nil {
		t.Fatalf("harness: federation has no DC %q", dc)
	}
	for _, other := range f.dcs {
		if other != dc && !f.servers[other].Running() {
			t.Fatalf("harness: federation restart %s: DC %s is stopped; restart it first", dc, other)
		}
	}
	s.Restart(t)
	for _, other := range f.dcs {
		if other == dc {
			continue
		}
		if err := s.joinWAN(f.servers[other].WANAddr()); err != nil {
			t.Fatalf("harness: federation restart %s: %v", dc, err)
		}
		break
	}
	if err := poll(FederationTimeout, f.federated); err != nil {
		t.Fatalf("harness: federation %v not converged within %s after restarting %s: %v", f.dcs, FederationTimeout, dc, err)
	}
}

// wanAlive checks that s sees every server in peers alive in WAN gossip.
func (s *Server) wanAlive(peers map[string]*Server) error {
	var members []api.AgentMember
	if err := s.agentJSON("/v1/agent/members?wan=1", &members); err != nil {
		return err
	}
	status := make(map[string]int, len(members))
	for _, m := range members {
		status[m.Name] = m.Status
	}
	for _, p := range peers {
		name := p.NodeName + "." + p.DC
		if st, ok := status[name]; !ok || st != serfAlive {
			return fmt.Errorf("%s: WAN member %s not alive (known %t, serf status %d)", s.DC, name, ok, st)
		}
	}
	return nil
}

func (s *Server) joinWAN(addr string) error {
	// api's Agent().Join takes no context, so the harness makes the call.
	if err := s.doToken(http.MethodPut, "/v1/agent/join/"+url.PathEscape(addr)+"?wan=1", s.agentToken(), nil); err != nil {
		return fmt.Errorf("consul %s: join WAN %s: %w", s.DC, addr, err)
	}
	return nil
}

// federated checks that every DC sees every other DC's server alive in WAN
// gossip, lists every DC, and reaches every other one. Gossip is checked
// too because a DC's router keeps a dead peer's server address: RPCs to a
// restarted peer succeed before gossip has marked it alive again.
func (f *Federation) federated() error {
	want := slices.Sorted(slices.Values(f.dcs))
	for _, dc := range f.dcs {
		s := f.servers[dc]
		if err := s.wanAlive(f.servers); err != nil {
			return err
		}
		c := s.api
		var got []string
		ctx, cancel := callContext()
		_, err := c.Raw().Query("/v1/catalog/datacenters", &got, (&api.QueryOptions{}).WithContext(ctx))
		cancel()
		if err != nil {
			return fmt.Errorf("%s: catalog/datacenters: %w", dc, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s: catalog/datacenters = %v, want %v", dc, got, want)
		}
		for _, other := range f.dcs {
			if other == dc {
				continue
			}
			ctx, cancel := callContext()
			_, _, err := c.Catalog().Services((&api.QueryOptions{Datacenter: other}).WithContext(ctx))
			cancel()
			if err != nil {
				return fmt.Errorf("%s: catalog/services?dc=%s: %w", dc, other, err)
			}
		}
	}
	return nil
}

// serfAlive is serf.StatusAlive as agent/members reports it.
const serfAlive = 1
