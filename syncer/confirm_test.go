package syncer

import (
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
)

// mirroredWeb is an env whose mirror holds web (two instances in dc1) and
// api (one, in dc1), after a complete first cycle.
func mirroredWeb(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	e := newEnv(t, mutate...)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("api", "n1", "api-1", 90))
	e.full()
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80")
	return e
}

func critical(i *fakeInst) { i.Status = api.HealthCritical }

// An empty answer is no proof: the mirrored entries go only when every DC
// the query can use says, with a complete and fresh read, that it has no
// usable instance. Otherwise they are kept, with the reason.
func TestSync_EmptyAnswerConfirmation(t *testing.T) {
	tests := []struct {
		name string
		// setup breaks (or not) the evidence after web's instances in
		// dc1 turned critical.
		setup func(p *fakePublic)
		// kept is the reason's fragment; "" means the delete is
		// confirmed.
		kept string
		// incomplete: the setup makes the cycle incomplete (none does
		// now: an unconfirmed delete, or a failover DC's catalog that is
		// filtered or stale, keeps entries but leaves the mirror
		// maintained; review finding H4).
		incomplete bool
	}{
		{name: "no usable instance in any DC: deleted", setup: func(*fakePublic) {}},
		{name: "a failover DC the query could not reach has usable instances", kept: "not confirmed: dc2 has usable instances",
			setup: func(p *fakePublic) {
				p.register("dc2", inst("web", "m1", "web-9", 80))
				p.locked(func() { p.noFailover["dc2"] = true })
			}},
		{name: "the source DC still has usable instances (the answer was stale)", kept: "not confirmed: dc1 has usable instances",
			setup: func(p *fakePublic) {
				p.register("dc1", inst("web", "n3", "web-3", 80))
				p.locked(func() { p.lagging["web"] = true })
			}},
		{name: "a failover DC does not answer", kept: "not confirmed: dc2 did not answer",
			setup: func(p *fakePublic) { p.failOp("usable", "dc2", errors.New("rpc error: timeout")) }},
		{name: "the source DC does not answer", kept: "not confirmed: dc1 did not answer",
			setup: func(p *fakePublic) { p.failOp("usable", "dc1", errors.New("rpc error: timeout")) }},
		{name: "a DC's answer is filtered by ACLs", kept: "not confirmed: dc2's answer is not complete and fresh",
			setup: func(p *fakePublic) { p.locked(func() { p.filtered["dc2"] = true }) }},
		{name: "a DC's answer is stale", kept: "not confirmed: dc2's answer is not complete and fresh",
			setup: func(p *fakePublic) { p.locked(func() { p.stale["dc2"] = true }) }},
		{name: "the failover targets are unknown", kept: "not confirmed: failover targets of dc1",
			setup: func(p *fakePublic) { p.failOp("targets", "dc1", errors.New("coordinates unavailable")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mirroredWeb(t)
			e.pub.update("dc1", "web", critical)
			tt.setup(e.pub)
			res := e.full()
			if res.Complete == tt.incomplete {
				t.Errorf("complete = %v, want %v", res.Complete, !tt.incomplete)
			}
			if tt.kept == "" {
				wantKept(t, res, nil)
				wantCounts(t, res, 0, 0, 2)
				wantHeld(t, e.st, "web")
				want := []string{
					"delete service " + mn("dc1", "n1") + "/web-1 empty answer: no usable instance in dc1, dc2 (confirmed)",
					"delete service " + mn("dc1", "n2") + "/web-2 empty answer: no usable instance in dc1, dc2 (confirmed)",
					"delete node " + mn("dc1", "n2") + "/ no mirrored service left on the node",
				}
				if got := changeStrings(res.Changes); !slices.Equal(got, want) {
					t.Errorf("changes\n got %q\nwant %q", got, want)
				}
				if e.pub.count("usable", "dc1", "web") != 1 || e.pub.count("usable", "dc2", "web") != 1 {
					t.Errorf("confirmation reads: dc1 %d, dc2 %d; want one each", e.pub.count("usable", "dc1", "web"), e.pub.count("usable", "dc2", "web"))
				}
			} else {
				wantKept(t, res, map[string]string{"web": tt.kept})
				wantCounts(t, res, 0, 0, 0)
				wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80")
			}
			// A deleted service leaves the coverage (a reader asks the
			// public cluster, which answers "none"); a kept one stays
			// covered (its entries are the last good answer).
			wantCov := []string{"api", "web"}
			if tt.kept == "" {
				wantCov = []string{"api"}
			}
			if got := e.st.covered(t); !slices.Equal(got, wantCov) {
				t.Errorf("coverage %q, want %q", got, wantCov)
			}
			wantHeld(t, e.st, "api", mn("dc1", "n1")+"/api-1:90")
		})
	}
}

// A service that vanished from every catalog is confirmed with fresh
// reads before its entries go: a catalog list can lag.
func TestSync_AbsentServiceConfirmed(t *testing.T) {
	t.Run("gone everywhere", func(t *testing.T) {
		e := mirroredWeb(t)
		e.pub.deregister("dc1", "web")
		execs := e.pub.count("execute", "dc1", "web")
		res := e.full()
		wantKept(t, res, nil)
		wantCounts(t, res, 0, 0, 2)
		wantHeld(t, e.st, "web")
		if e.pub.count("usable", "dc1", "web") != 1 || e.pub.count("usable", "dc2", "web") != 1 {
			t.Errorf("deleted without a confirmation read in every DC the query uses")
		}
		if e.pub.count("execute", "dc1", "web") != execs {
			t.Errorf("an absent service's query was executed")
		}
		if res.Changes[0].Reason != "service no longer in any public datacenter: no usable instance in dc1, dc2 (confirmed)" {
			t.Errorf("reason %q", res.Changes[0].Reason)
		}
		if got := e.st.covered(t); !slices.Equal(got, []string{"api"}) {
			t.Errorf("coverage %q: a deleted service stays covered (readers must ask the public cluster)", got)
		}
	})
	t.Run("the catalog lags the health data", func(t *testing.T) {
		e := mirroredWeb(t)
		e.pub.locked(func() { e.pub.catalogLag["dc1|web"] = true })
		res := e.full()
		wantKept(t, res, map[string]string{"web": "service no longer in any public datacenter not confirmed: dc1 has usable instances"})
		wantCounts(t, res, 0, 0, 0)
		wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80")
	})
}
