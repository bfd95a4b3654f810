package admintest

import (
	"context"
	"sync"
	"time"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Fake is a controller for fast tests of the admin API and the ops CLI
// (no Consul). Sync records every request and answers through SyncFn
// (default: a complete, empty result).
type Fake struct {
	GatewayNames []string
	SyncFn       func(ctx context.Context, req syncer.Request) (syncer.Result, error)
	// OwnedFn, if set, says which gateways this replica writes.
	OwnedFn func(gateway string) bool
	// Health is the per-DC read health Status reports.
	Health []syncer.DCHealth

	mu    sync.Mutex
	calls []syncer.Request
}

var _ admin.Controller = (*Fake)(nil)

// NewFake returns a Fake with the named gateways.
func NewFake(gateways ...string) *Fake { return &Fake{GatewayNames: gateways} }

// Gateways returns the gateway names.
func (f *Fake) Gateways() []string { return append([]string(nil), f.GatewayNames...) }

// Sync records req and answers it.
func (f *Fake) Sync(ctx context.Context, req syncer.Request) (syncer.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	fn := f.SyncFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, req)
	}
	now := time.Now()
	return syncer.Result{Gateway: req.Gateway, Services: req.Services, DryRun: req.DryRun, Complete: true,
		Started: now, Finished: now}, nil
}

// Status reports every gateway synced (those it writes) from dc1.
func (f *Fake) Status() syncer.Status {
	st := syncer.Status{Datacenters: f.Health}
	for _, g := range f.GatewayNames {
		owned := f.OwnedFn == nil || f.OwnedFn(g)
		st.Gateways = append(st.Gateways, syncer.GatewayStatus{Name: g, SourceDatacenter: "dc1", Synced: owned, Owned: owned, Vouching: owned})
	}
	return st
}

// Ready is always true.
func (f *Fake) Ready() bool { return true }

// Calls returns the requests Sync has seen.
func (f *Fake) Calls() []syncer.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]syncer.Request(nil), f.calls...)
}

// FakeReplicas is a Fake whose replicas share the gateways: each gateway
// is held by the replica its owner names (none: nobody holds it).
type FakeReplicas struct {
	*Fake
	ReplicaID string

	omu    sync.Mutex
	owners map[string]admin.Owner
}

var _ admin.Ownership = (*FakeReplicas)(nil)

// NewFakeReplicas returns replica's view of the gateways' owners.
func NewFakeReplicas(replica string, owners map[string]admin.Owner, gateways ...string) *FakeReplicas {
	f := &FakeReplicas{Fake: NewFake(gateways...), ReplicaID: replica, owners: map[string]admin.Owner{}}
	for g, o := range owners {
		f.owners[g] = o
	}
	f.OwnedFn = func(g string) bool {
		replica, _, self := f.Owner(g)
		return self && replica != ""
	}
	return f
}

// SetOwner records that o holds gateway.
func (f *FakeReplicas) SetOwner(gateway string, o admin.Owner) {
	f.omu.Lock()
	defer f.omu.Unlock()
	f.owners[gateway] = o
}

// Replica returns this replica's id.
func (f *FakeReplicas) Replica() string { return f.ReplicaID }

// Owner returns the gateway's owner.
func (f *FakeReplicas) Owner(gateway string) (string, string, bool) {
	f.omu.Lock()
	defer f.omu.Unlock()
	o := f.owners[gateway]
	return o.Replica, o.Address, o.Replica == f.ReplicaID
}

// FakeEvents is a Fake that runs the event path.
type FakeEvents struct {
	*Fake
	Loops []watch.LoopStatus
}

var _ admin.EventReporter = (*FakeEvents)(nil)

// EventStatus returns Loops.
func (f *FakeEvents) EventStatus() []watch.LoopStatus { return f.Loops }
