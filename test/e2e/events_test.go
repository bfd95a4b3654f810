package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// runController starts c.Run in the background and waits for every
// gateway's first full sync. It stops through t.Cleanup.
func runController(t *testing.T, c *syncer.Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	harness.Eventually(t, waitTimeout, func() error {
		for _, g := range c.Status().Gateways {
			if !g.Synced {
				return fmt.Errorf("gateway %s: first full sync not done", g.Name)
			}
		}
		return nil
	})
}

// mirrorIDs returns the IDs of service's mirrored instances in srv, sorted.
func mirrorIDs(t *testing.T, srv *harness.Server, service string) ([]string, error) {
	t.Helper()
	m, err := mirrorOf(t, srv, service)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(m))
	for i, x := range m {
		ids[i] = x.ID
	}
	sort.Strings(ids)
	return ids, nil
}

// waitMirror waits until the mirror of service in srv has exactly ids.
func waitMirror(t *testing.T, srv *harness.Server, service string, ids ...string) {
	t.Helper()
	sort.Strings(ids)
	harness.Eventually(t, waitTimeout, func() error {
		got, err := mirrorIDs(t, srv, service)
		if err != nil {
			return err
		}
		if !slices.Equal(got, ids) && !(len(got) == 0 && len(ids) == 0) {
			return fmt.Errorf("%s mirror of %s = %v, want %v", srv.DC, service, got, ids)
		}
		return nil
	})
}

// TestEvents: with the full reconcile an hour away, public changes reach
// the dedicated cluster through the event path alone.
func TestEvents(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2", "dc3")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	g1 := harness.StartServer(t, "gw1")
	dc1.Register(t, inst("e1", "ev-web", "ev-web-1", 80))
	dc2.Register(t, inst("e9", "ev-far", "ev-far-1", 80)) // only in dc2: gw1 gets it by failover
	proxy := harness.NewProxy(t, dc1.HTTPAddr())
	c, _ := setup{publicAddr: proxy.Addr(), include: []string{"ev-*"}, gateways: []gw{{"gw1", "dc1", g1}}, events: true}.controller(t)
	runController(t, c)
	waitMirror(t, g1, "ev-web", "ev-web-1")
	waitMirror(t, g1, "ev-far", "ev-far-1")

	t.Run("Register", func(t *testing.T) {
		dc1.Register(t, inst("e2", "ev-web", "ev-web-2", 80))
		waitMirror(t, g1, "ev-web", "ev-web-1", "ev-web-2")
	})
	t.Run("CheckCritical", func(t *testing.T) {
		dc1.SetStatus(t, "e2", "ev-web-2", api.HealthCritical)
		waitMirror(t, g1, "ev-web", "ev-web-1")
		dc1.SetStatus(t, "e2", "ev-web-2", api.HealthPassing)
		waitMirror(t, g1, "ev-web", "ev-web-1", "ev-web-2")
	})
	t.Run("Deregister", func(t *testing.T) {
		dc1.Deregister(t, "e2", "ev-web-2")
		waitMirror(t, g1, "ev-web", "ev-web-1")
	})
	t.Run("NewService", func(t *testing.T) {
		dc1.Register(t, inst("e3", "ev-new", "ev-new-1", 80))
		waitMirror(t, g1, "ev-new", "ev-new-1")
	})
	t.Run("ChangeInFailoverDC", func(t *testing.T) {
		dc2.Register(t, inst("e8", "ev-far", "ev-far-2", 80))
		waitMirror(t, g1, "ev-far", "ev-far-1", "ev-far-2")
		// Switch back: the service appears in the source DC.
		dc1.Register(t, inst("e7", "ev-far", "ev-far-home", 80))
		waitMirror(t, g1, "ev-far", "ev-far-home")
	})
	t.Run("BurstCostsAFewExecutes", func(t *testing.T) {
		executes := func() int {
			return proxy.Count(func(r harness.Request) bool { return r.Path == "/v1/query/gwsync-ev-web/execute" })
		}
		before := executes()
		for i := range 100 {
			in := inst("e1", "ev-web", "ev-web-1", 80)
			in.Tags = []string{fmt.Sprintf("v%d", i)}
			dc1.Register(t, in)
		}
		harness.Eventually(t, waitTimeout, func() error {
			m, err := mirrorOf(t, g1, "ev-web")
			if err != nil || len(m) != 1 || m[0].Tags != "v99" {
				return fmt.Errorf("mirror of ev-web = %+v, %v; want the last change (tag v99)", m, err)
			}
			return nil
		})
		n := executes() - before
		t.Logf("a burst of 100 changes to one service cost %d executes", n)
		if n > 15 {
			t.Fatalf("a burst of 100 changes cost %d executes, want a handful", n)
		}
	})
}

// TestEvents_PublicRestartConverges: a public DC restarted empty, then
// re-registered, converges through events (after the feed's resync), with
// the full reconcile an hour away.
func TestEvents_PublicRestartConverges(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	g1 := harness.StartServer(t, "gw1")
	for i := range 3 {
		dc1.Register(t, inst(fmt.Sprintf("r%d", i), "rs-web", fmt.Sprintf("rs-web-%d", i), 80))
	}
	c, _ := setup{publicAddr: dc1.HTTPAddr(), include: []string{"rs-*"}, gateways: []gw{{"gw1", "dc1", g1}}, events: true}.controller(t)
	runController(t, c)
	waitMirror(t, g1, "rs-web", "rs-web-0", "rs-web-1", "rs-web-2")
	fed.Restart(t, "dc1")
	for i := 1; i < 4; i++ {
		dc1.Register(t, inst(fmt.Sprintf("r%d", i), "rs-web", fmt.Sprintf("rs-web-%d", i), 80))
	}
	waitMirror(t, g1, "rs-web", "rs-web-1", "rs-web-2", "rs-web-3")
}

// TestEvents_RandomChurn: random registrations, deregistrations and check
// flips across three DCs; once they stop, every (gateway, service) of the
// mirror equals a direct prepared-query execution.
func TestEvents_RandomChurn(t *testing.T) {
	fed := harness.StartFederation(t, "dc1", "dc2", "dc3")
	dcs := fed.DCs()
	gws := []gw{{"gw1", "dc1", harness.StartServer(t, "gw1")}, {"gw2", "dc2", harness.StartServer(t, "gw2")}}
	services := []string{"ch-a", "ch-b", "ch-c", "ch-d"}
	c, _ := setup{publicAddr: fed.Server("dc1").HTTPAddr(), include: []string{"ch-*"}, gateways: gws, events: true}.controller(t)
	runController(t, c)
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct{ dc, node, id string }
	live := map[key]bool{}
	for step := range 150 {
		dc := dcs[rng.IntN(len(dcs))]
		svc := services[rng.IntN(len(services))]
		k := key{dc, fmt.Sprintf("n%d", rng.IntN(4)), ""}
		k.id = fmt.Sprintf("%s-%s-%s", svc, dc, k.node)
		srv := fed.Server(dc)
		switch op := rng.IntN(10); {
		case op < 5 || !live[k]:
			srv.Register(t, inst(k.node, svc, k.id, 1000+step))
			live[k] = true
		case op < 7:
			srv.Deregister(t, k.node, k.id)
			delete(live, k)
		default:
			status := api.HealthCritical
			if rng.IntN(2) == 0 {
				status = api.HealthPassing
			}
			srv.SetStatus(t, k.node, k.id, status)
		}
	}
	for _, g := range gws {
		for _, s := range services {
			harness.Eventually(t, waitTimeout, func() error {
				want, err := executeIDs(t, fed.Server(g.dc), s)
				if err != nil {
					return err
				}
				got, err := mirrorIDs(t, g.srv, s)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
					return fmt.Errorf("%s mirror of %s = %v, direct execute = %v", g.name, s, got, want)
				}
				return nil
			})
		}
	}
}

// executeIDs runs gwsync's template query for service in srv's DC and
// returns the instance IDs of the answer, sorted.
func executeIDs(t *testing.T, srv *harness.Server, service string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, _, err := srv.Client(t).PreparedQuery().Execute("gwsync-"+service, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range resp.Nodes {
		out = append(out, n.Service.ID)
	}
	sort.Strings(out)
	return out, nil
}
