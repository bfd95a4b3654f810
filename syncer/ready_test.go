package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/ha"
)

// fakeLeases is a coordinator whose view of the owners a test sets; this
// replica holds no lease (Ready reads only Owners).
type fakeLeases struct{ owners []ha.GatewayOwner }

func (f *fakeLeases) Run(ctx context.Context) error  { <-ctx.Done(); return nil }
func (f *fakeLeases) Lease(string) (*ha.Lease, bool) { return nil, false }
func (f *fakeLeases) Changed() <-chan struct{}       { return make(chan struct{}) }
func (f *fakeLeases) Fenced(string, string)          {}
func (f *fakeLeases) Owners() []ha.GatewayOwner      { return f.owners }
func (f *fakeLeases) Status() ha.Status              { return ha.Status{} }

// With several replicas, a standby is not ready while it does not know
// the owner of every gateway, nor while it is the preferred owner of a
// gateway nobody holds (it is about to take it): ready at once, it let a
// rollout (and the process test) go on before any replica had synced.
func TestReady_StandbyWaitsForOwners(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.HA.SessionTTL, c.HA.LockDelay = 10*time.Second, 5*time.Second })
	leases := &fakeLeases{}
	e.restartWith(func(o *Options) { o.Leases = leases })
	ctl := e.ctl
	cases := []struct {
		name  string
		owner ha.GatewayOwner
		ready bool
	}{
		{"lock not read yet", ha.GatewayOwner{Gateway: gw}, false},
		{"nobody holds it, we are preferred", ha.GatewayOwner{Gateway: gw, Known: true, Preferred: "r1"}, false},
		{"nobody holds it, another is preferred", ha.GatewayOwner{Gateway: gw, Known: true, Preferred: "r2"}, true},
		{"another replica holds it", ha.GatewayOwner{Gateway: gw, Known: true, Held: true, Replica: "r2", Preferred: "r1"}, true},
		{"we hold it, not synced yet", ha.GatewayOwner{Gateway: gw, Known: true, Held: true, Self: true, Replica: "r1", Preferred: "r1"}, false},
	}
	for _, tc := range cases {
		leases.owners = []ha.GatewayOwner{tc.owner}
		if got := ctl.Ready(); got != tc.ready {
			t.Errorf("%s: Ready() = %v, want %v", tc.name, got, tc.ready)
		}
	}
}

// An owner this replica still cannot learn after a takeover's bound (its
// dedicated cluster unreachable) no longer keeps it unready: one broken
// cluster stalled every rollout, the fix's included.
func TestReady_UnreachableClusterStopsBlocking(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.HA.SessionTTL, c.HA.LockDelay = 10*time.Second, 5*time.Second
		g2 := c.Gateways[0]
		g2.Name = "edge2"
		c.Gateways = append(c.Gateways, g2)
	})
	e.stores["edge2"] = newFakeStore("edge2")
	leases := &fakeLeases{owners: []ha.GatewayOwner{
		{Gateway: gw, Known: true, Held: true, Replica: "r2", Preferred: "r2"},
		{Gateway: "edge2"}, // its cluster is down: the lock was never read
	}}
	e.restartWith(func(o *Options) { o.Leases = leases })
	ctl := e.ctl
	if ctl.Ready() {
		t.Error("ready before a takeover's bound with an owner unknown")
	}
	e.clock.Advance(26 * time.Second) // 2 × 10 s + 5 s
	if !ctl.Ready() {
		t.Error("still unready long after the bound because one cluster cannot be reached")
	}
}

// With replicas, only the owner of a gateway reports its mirror age: a
// standby's age since its own start hid a stale mirror from the alert.
func TestMirrorAge_OnlyOwnedWithReplicas(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	ctl, err := New(e.cfg, Options{Registerer: reg, Now: e.clock.Now, Public: e.pub, Stores: map[string]Store{gw: e.st}, Replica: "r1", Leases: &fakeLeases{}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "gwsync_mirror_age_seconds"); err != nil || n != 0 {
		t.Fatalf("a standby reports %d mirror ages (%v), want none", n, err)
	}
	ctl.gateways[gw].setOwned(true)
	if n, err := testutil.GatherAndCount(reg, "gwsync_mirror_age_seconds"); err != nil || n != 1 {
		t.Fatalf("the owner reports %d mirror ages (%v), want 1", n, err)
	}
}
