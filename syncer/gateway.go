package syncer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
)

// gatewaySyncer reconciles one gateway's dedicated cluster.
//
// Concurrency: reads of the public side run without any lock. Every write
// (and every change to the model) happens under writeMu, which is held only
// while planning against the model and committing, never while reading the
// public side. A full reconcile and event-driven reconciles of a few
// services therefore interleave; the rule that keeps them consistent is
// that an answer is never applied over one whose execution started later
// (applied). runMu serialises full reconciles (scheduled and forced).
type gatewaySyncer struct {
	cfg       config.Gateway
	services  config.Services
	safety    config.Safety
	markerInt time.Duration
	maxSync   time.Duration
	maxStale  time.Duration
	readConc  int
	replica   string
	shared    *Shared
	store     Store
	enc       mirror.Encoder
	templates *templateCache
	log       hclog.Logger
	metrics   *Metrics
	now       func() time.Time

	// failoverAny: the query fails over by nearest_n (any DC may be near);
	// failoverDCs: its fixed failover list.
	failoverAny bool
	failoverDCs []string

	runMu chan struct{} // full reconciles, one at a time

	// kick asks the gateway's loop for a full reconcile soon (a marker
	// that vanished, a resync event, a new lease).
	kick chan struct{}
	// onFenced tells the HA layer that a write carrying session was fenced.
	onFenced func(session string)
	// lease is this replica's lease on the gateway (HA).
	lease leaseState

	writeMu sync.Mutex
	writes  uint64 // commits so far (under writeMu)
	// modelMu guards the model's content for readers that do not hold
	// writeMu (source reads consult it); writers hold both.
	modelMu sync.RWMutex
	model   *State // nil: not loaded (or invalidated by a conflict)
	// loaded is closed while model is set (setModel), for event rounds
	// waiting for a full reconcile to load it.
	loaded chan struct{}
	// loadedAt is when the model was last read in full from the cluster.
	loadedAt time.Time
	applied  map[string]time.Time // service -> start of the execution last applied
	marker   *mirror.Marker       // as last loaded or written
	covered  map[string]bool      // as last loaded or written

	mu     sync.Mutex // status, never held across a network call
	status GatewayStatus
	// fullMinAt: every answer the running or last full reconcile uses
	// started at or after it.
	fullMinAt time.Time
	// fullFloor: the next full reconciles use only answers that started
	// at or after it (requestFullAfter: changes they must cover).
	fullFloor time.Time
	// ownedSince: when this replica took the gateway's lease (zero
	// without HA). Changes before it were this replica's to ignore.
	ownedSince time.Time
	// evidenced: a complete full sync with complete evidence (every
	// catalog, every read) has happened since this replica began writing
	// the gateway; until then nothing is deleted.
	evidenced bool
	// logged: conditions logOnce has reported.
	logged map[string]string
}

// GatewayStatus is a gateway's state for the admin API.
type GatewayStatus struct {
	Name             string
	SourceDatacenter string
	// Synced: a complete full sync has happened since this replica began
	// writing the gateway.
	Synced      bool
	Generation  uint64
	LastRun     time.Time
	LastSuccess time.Time
	LastError   string
	LastErrorAt time.Time
	Services    int
	Instances   int
	Covered     int
	DeletesHeld int
	HeldReason  string
	Kept        int
	// Problems counts instances that could not be mirrored in the last
	// full cycle; LastProblem is one of them.
	Problems    int
	LastProblem string
	// Vouching: the marker heartbeat still runs (the last complete sync is
	// younger than max_sync_age).
	Vouching bool
	// Owned: this replica holds the gateway's lock and writes it.
	Owned bool
	// Selection is the gateway's effective service selection.
	Selection config.Services
}

// Request asks for one reconcile of a gateway, or of some services of it.
type Request struct {
	Gateway string
	// Services limits the scope (nil: the whole gateway).
	Services []string
	// Force applies deletes the mass-delete guard would hold, and reads
	// the source and the mirror fresh.
	Force bool
	// DryRun plans without writing.
	DryRun bool
	// Progress, if set, is called as services are read from the source.
	Progress func(done, total int)
	// minAt: an event-driven reconcile uses no answer started earlier.
	minAt time.Time
}

// Scopes of a reconcile (metric label values).
const (
	ScopeFull     = "full"
	ScopeServices = "service"
	ScopeEvent    = "event"
)

// Result is the outcome of one reconcile.
type Result struct {
	Gateway  string
	Services []string
	Scope    string
	DryRun   bool
	Started  time.Time
	Finished time.Time
	// Complete: the source was read in full (every DC, every service in
	// scope) and every write was applied (but for rejected instances,
	// reported in Problems).
	Complete    bool
	Adds        int
	Updates     int
	Deletes     int
	DeletesHeld int
	HeldReason  string
	// Kept: service -> why its entries were left as they are.
	Kept     map[string]string
	Errors   []string
	Problems []string
	Changes  []Change
	// ChangesOmitted counts changes not listed (a full reconcile's, see
	// MaxListedChanges).
	ChangesOmitted int
	// Selection is the gateway's effective service selection.
	Selection config.Services
	// Mirrored services and instances after the reconcile.
	MirroredServices  int
	MirroredInstances int
	TxnOps            int
	// evidence: every catalog and every service was read (a full cycle).
	evidence bool
	// unread: the services whose source read failed (their entries kept).
	unread []string
}

// maxListed bounds the errors and problems a result carries.
const maxListed = 20

func appendBounded(list []string, s ...string) []string {
	for _, x := range s {
		if len(list) >= maxListed {
			return list
		}
		list = append(list, x)
	}
	return list
}

func (g *gatewaySyncer) lockRun(done <-chan struct{}) bool {
	select {
	case g.runMu <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

func (g *gatewaySyncer) unlockRun() { <-g.runMu }

func (g *gatewaySyncer) snapshot() GatewayStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// record stores a reconcile's outcome in status and metrics.
func (g *gatewaySyncer) record(res Result, err error) {
	// A dry run changes nothing; a run cancelled (shutdown, a lease that
	// ended) did not fail: neither is a run to count or an error to show.
	if res.DryRun || errors.Is(err, context.Canceled) {
		return
	}
	result := runSuccess
	switch {
	case err != nil && res.TxnOps == 0:
		result = runError
	case err != nil || !res.Complete || len(res.Errors) > 0:
		result = runPartial // incomplete, or complete with reads that failed
	}
	g.metrics.SyncRuns.WithLabelValues(g.cfg.Name, res.Scope, result).Inc()
	g.metrics.SyncDuration.WithLabelValues(g.cfg.Name, res.Scope).Observe(res.Finished.Sub(res.Started).Seconds())
	g.metrics.InstanceProblems.WithLabelValues(g.cfg.Name).Add(float64(len(res.Problems)))
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.status
	s.LastRun = res.Finished
	if len(res.Errors) > 0 {
		s.LastError, s.LastErrorAt = res.Errors[0], res.Finished
	}
	if res.MirroredInstances > 0 || res.Scope == ScopeFull && err == nil {
		s.Services, s.Instances = res.MirroredServices, res.MirroredInstances
		g.metrics.MirroredServices.WithLabelValues(g.cfg.Name).Set(float64(res.MirroredServices))
		g.metrics.MirroredInsts.WithLabelValues(g.cfg.Name).Set(float64(res.MirroredInstances))
	}
	if res.Scope != ScopeFull {
		return
	}
	s.Problems = len(res.Problems)
	if len(res.Problems) > 0 {
		s.LastProblem = res.Problems[0]
	}
	if err == nil {
		s.DeletesHeld, s.HeldReason, s.Kept = res.DeletesHeld, res.HeldReason, len(res.Kept)
		g.metrics.DeletesHeld.WithLabelValues(g.cfg.Name).Set(float64(res.DeletesHeld))
	}
	if res.Complete && res.evidence {
		g.evidenced = true
	}
	if res.Complete {
		s.Synced, s.LastSuccess = true, res.Finished
		g.metrics.LastSuccess.WithLabelValues(g.cfg.Name).Set(float64(res.Finished.UnixNano()) / 1e9)
	}
}

// readAll reports whether a full sync with complete evidence happened
// (the delete guard's "synced").
func (g *gatewaySyncer) readAll() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evidenced
}

// lastSuccess is the time of the last complete full sync (zero: none).
func (g *gatewaySyncer) lastSuccess() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status.LastSuccess
}

// setModel sets (nil: invalidates) the model; modelMu held for writing.
func (g *gatewaySyncer) setModel(m *State) {
	g.model = m
	select {
	case <-g.loaded: // closed: loaded until now
		if m == nil {
			g.loaded = make(chan struct{})
		}
	default:
		if m != nil {
			close(g.loaded)
		}
	}
}

// modelLoaded returns a channel closed once the model is loaded.
func (g *gatewaySyncer) modelLoaded() <-chan struct{} {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	return g.loaded
}

// fullCovers reports whether a full reconcile (running or done) reads
// only answers that started after t: it sees every change made before t.
func (g *gatewaySyncer) fullCovers(t time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fullMinAt.After(t)
}

// maxLogged bounds the conditions logOnce remembers.
const maxLogged = 10000

// logOnce logs a condition at warn the first time key has value, and at
// debug while it keeps it: a problem that persists from cycle to cycle
// (a bad instance, a DC that is down) is said once, not every cycle. An
// empty value forgets the key (the condition ended).
func (g *gatewaySyncer) logOnce(key, value, msg string, args ...any) {
	g.mu.Lock()
	if g.logged == nil || len(g.logged) > maxLogged {
		g.logged = map[string]string{}
	}
	last := g.logged[key]
	if value == "" {
		delete(g.logged, key)
	} else {
		g.logged[key] = value
	}
	g.mu.Unlock()
	switch {
	case value == "":
	case value != last:
		g.log.Warn(msg, args...)
	default:
		g.log.Debug(msg, args...)
	}
}

// requestFullAfter asks for a full reconcile soon that covers changes
// made up to t: it uses only answers that started after t, not the ones
// its share window would let it reuse.
func (g *gatewaySyncer) requestFullAfter(t time.Time) {
	g.mu.Lock()
	g.fullFloor = maxTime(g.fullFloor, t.Add(time.Nanosecond))
	g.mu.Unlock()
	g.requestFull()
}

// requestFull asks for a full reconcile soon.
func (g *gatewaySyncer) requestFull() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// setOwned records whether this replica writes the gateway.
func (g *gatewaySyncer) setOwned(owned bool) {
	g.mu.Lock()
	g.status.Owned = owned
	if owned {
		g.ownedSince = g.now()
	} else {
		g.status.Synced, g.evidenced = false, false
	}
	g.mu.Unlock()
}
