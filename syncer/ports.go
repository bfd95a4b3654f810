package syncer

import (
	"context"
	"errors"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// The reconcile core talks to Consul through two small interfaces: Public
// (the public multi-DC cluster, read-only but for the query template) and
// Store (one gateway's dedicated cluster). syncer/consul implements both on
// the Consul HTTP API; the core's unit tests use in-memory fakes, so rules
// such as "an empty answer is confirmed before anything is deleted" are
// tested exactly, and the e2e tests run the same core on real servers.

// Public is the public multi-DC Consul as the reconcile core reads it.
type Public interface {
	// Datacenters lists the federation's datacenters.
	Datacenters(ctx context.Context) ([]string, error)
	// Catalog lists dc's services with their tags.
	Catalog(ctx context.Context, dc string) (Catalog, error)
	// Execute runs the prepared query for service in dc. A missing
	// template is ErrQueryNotFound.
	Execute(ctx context.Context, dc, service string) (Answer, error)
	// Usable counts service's instances in dc that the query would use
	// (passing; or not critical when only_passing is off), from a read
	// fresh enough to justify a delete (see Evidence).
	Usable(ctx context.Context, dc, service string) (int, Evidence, error)
	// EnsureTemplate creates or updates gwsync's template in dc (manage)
	// or checks that it exists (not manage); create false only checks.
	EnsureTemplate(ctx context.Context, dc string, create bool) error
	// FailoverTargets are the DCs a query executed in dc may fail over to,
	// in the order Consul would try them now.
	FailoverTargets(ctx context.Context, dc string) ([]string, error)
}

// Catalog is one DC's service list.
type Catalog struct {
	// Services maps each service name to its tags.
	Services map[string][]string
	Evidence
}

// Evidence says whether a read can justify a delete: complete (not
// filtered by ACLs) and fresh (a leader is known and the answering server
// heard from it recently, or the read was consistent).
type Evidence struct {
	Filtered    bool
	KnownLeader bool
	LastContact time.Duration
	Consistent  bool
}

// Trusted reports whether the read is complete and at most maxStale old.
func (e Evidence) Trusted(maxStale time.Duration) bool {
	if e.Filtered {
		return false
	}
	return e.Consistent || (e.KnownLeader && e.LastContact <= maxStale)
}

// Answer is one prepared-query execution, converted at the boundary to
// mirror's compact form.
type Answer struct {
	// Datacenter answered; Failovers is how many DCs the query tried.
	Datacenter string
	Failovers  int
	Endpoints  []mirror.Endpoint
	// Problems are answer entries that could not be converted at all.
	Problems []string
	// At is when the execution started: an answer is never applied over
	// one that started later.
	At time.Time
	Evidence
}

// ErrQueryNotFound: the template query does not exist in the DC (a public
// DC restarted empty, or someone deleted it).
var ErrQueryNotFound = errors.New("prepared query template not found")

// Store is one gateway's dedicated cluster as the reconcile core writes it.
// It is the only way the core writes: every txn it sends carries the HA
// fence (when one is set) and the change-feed chain, so a replica that lost
// its lock, or a cluster that restarted under a running cycle, makes the
// write fail instead of landing.
type Store interface {
	// Load reads every node and instance gwsync owns for the gateway, the
	// names of nodes it does not own, and the gateway's records.
	Load(ctx context.Context) (Snapshot, error)
	// Read is Load for a dry run: it changes nothing in the Store.
	Read(ctx context.Context) (Snapshot, error)
	// LoadServices reads the owned instances of services (and their
	// nodes), for a forced resync that must see the cluster as it is.
	LoadServices(ctx context.Context, services []string) (Snapshot, error)
	// Unchanged reports whether the cluster's catalog has not moved since
	// this Store's last Load or Commit (two tiny reads), so the model is
	// still exact and a full reconcile need not read every service.
	Unchanged(ctx context.Context) (bool, error)
	// Commit writes w: catalog ops in batches (a node with its services),
	// then, in the final txn, the change feed, coverage and marker.
	Commit(ctx context.Context, w Write) (Committed, error)
	// Heartbeat refreshes the marker's CheckedAt if it is still the one
	// this controller wrote (check-and-set); ok false if it vanished or
	// changed.
	Heartbeat(ctx context.Context, now time.Time) (ok bool, err error)
	// SetFence makes every later txn start with op (nil: no fence).
	SetFence(f Fence)
	// EnsureLocalTemplate creates or updates the local query template.
	EnsureLocalTemplate(ctx context.Context) error
}

// Fence is the HA check every write carries: a KV check-session on the
// gateway's lock key.
type Fence struct {
	Key     string
	Session string
}

// Snapshot is what Load read.
type Snapshot struct {
	State State
	// Marker is the sync marker (nil: absent); Coverage the covered
	// services (nil: no record).
	Marker   *mirror.Marker
	Coverage map[string]bool
}

// Write is one Commit.
type Write struct {
	Plan Plan
	// Touched are the services whose entries the plan changes (for the
	// change feed).
	Touched []string
	// Coverage, when not nil, is the complete new set of covered
	// services; the store writes the shards that changed.
	Coverage map[string]bool
	// CoverAdd adds services to the coverage (a targeted reconcile of a
	// service new to the mirror), CoverDel removes some (a targeted delete
	// of a service's last instances); ignored when Coverage is set.
	CoverAdd []string
	CoverDel []string
	// Marker, when not nil, is written in the final txn, conditional on
	// the marker Load saw (or its absence).
	Marker *mirror.Marker
}

// Committed is what a Commit wrote.
type Committed struct {
	// Ops is the number of catalog ops committed.
	Ops int
	// Rejected are the plan's ops Consul refused, one per instance or
	// node, each with the reason; the rest of the write went through.
	Rejected []Rejected
	// Nodes maps created or updated node names to their new ModifyIndex.
	Nodes map[string]uint64
}

// Rejected is one op Consul refused.
type Rejected struct {
	Kind    Kind
	Node    string
	Service string
	ID      string
	Reason  string
}

// FencedError: a txn's check-session failed: the session it carried no
// longer holds the gateway's lock. errors.Is(err, ErrFenced) matches it.
type FencedError struct{ Session string }

func (e *FencedError) Error() string { return ErrFenced.Error() }

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Errors a Store returns for writes that must not be retried blindly.
var (
	// ErrFenced: the txn's check-session failed: this replica no longer
	// holds the gateway's lock.
	ErrFenced = errors.New("write fenced: this replica no longer holds the gateway's lock")
	// ErrConflict: the change feed or the marker was not what this
	// controller last saw: the cluster restarted (empty) or someone else
	// wrote. The caller reloads before writing again.
	ErrConflict = errors.New("dedicated cluster changed under the write (restarted, or another writer)")
)
