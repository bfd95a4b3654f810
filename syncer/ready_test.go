package syncer

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
	e := newEnv(t)
	leases := &fakeLeases{}
	stores := map[string]Store{}
	for name, s := range e.stores {
		stores[name] = s
	}
	ctl, err := New(e.cfg, Options{Registerer: prometheus.NewRegistry(), Now: e.clock.Now, Public: e.pub, Stores: stores, Replica: "r1", Leases: leases})
	if err != nil {
		t.Fatal(err)
	}
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
