// Package syncer is gwsync's sync controller: it executes prepared queries
// against the public multi-DC Consul and mirrors the answers into each
// gateway's dedicated Consul cluster, writing only what changed.
//
// Reconciliation is level-based. Every run computes the desired state of
// its scope (a gateway, or some services of it) from the public side and
// converges the dedicated cluster to it; schedules, public change events
// and forced resyncs only decide when and what scope. Guards keep data:
// nothing is deleted on incomplete or stale evidence or before a complete
// read, and mass deletes are held unless forced.
//
// The path of a change (docs/design.md): events.go learns which services
// changed on the public side and which gateways care; reconcile.go (full)
// and targeted.go (some services) read the answers (desired.go), plan
// against the model (diff.go, guard.go) and commit through a Store
// (syncer/consul), which also writes the change feed resolvers follow.
package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Options are a Controller's injected dependencies.
type Options struct {
	Logger     hclog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Public reads the public cluster; Stores writes each gateway's
	// dedicated cluster (by gateway name). Both are required: cmd builds
	// them with syncer/consul, tests with fakes.
	Public Public
	Stores map[string]Store
	// Replica names this controller replica (in markers, locks and
	// status); AdvertiseAddr is where its admin API answers, for the
	// other replicas (HA).
	Replica       string
	AdvertiseAddr string
	// Detector, if set, is the public change feed (syncer/watch): the
	// event path runs only with one.
	Detector Detector
	// Metrics, if set, are the controller's metrics, already registered
	// (syncer/consul.Setup creates them for its own parts too).
	Metrics *Metrics
	// Leases, if set, is the HA coordinator: this replica writes only the
	// gateways it holds the lock of. Without it, it writes every gateway
	// (tests, and the single-process demo's in-process controller).
	Leases Leases
}

// Detector is the public change feed.
type Detector interface {
	Run(ctx context.Context, sink func(watch.Event)) error
	UsableCounter
	// DCs are the public DCs the feed watches.
	DCs() []string
}

// Controller runs every gateway's reconciles: on its schedule (the safety
// net), on public change events, and on demand.
type Controller struct {
	cfg      *config.Config
	log      hclog.Logger
	metrics  *Metrics
	shared   *Shared
	gateways map[string]*gatewaySyncer
	order    []string
	now      func() time.Time
	detector Detector
	events   *events
	leases   Leases
	replica  string
	// started: when the controller was built; settle: how long after it an
	// owner this replica cannot learn (a dedicated cluster it cannot
	// reach) keeps it unready: a takeover's bound, 2 × session TTL +
	// lock-delay.
	started time.Time
	settle  time.Duration
}

// New builds a Controller for cfg.
func New(cfg *config.Config, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Public == nil {
		return nil, fmt.Errorf("new controller: no public cluster reader")
	}
	log := opts.Logger.Named("syncer")
	m := opts.Metrics
	if m == nil {
		m = NewMetrics(opts.Registerer)
	}
	if cfg.Query.ShareWindow < cfg.Query.ConfiguredShareWindow {
		log.Info("share_window lowered below half the shortest schedule period", "share_window", cfg.Query.ShareWindow)
	}
	shared := NewShared(opts.Public, SharedOptions{Window: cfg.Query.ShareWindow, BackoffMin: cfg.Retry.MinBackoff,
		BackoffMax: cfg.Retry.MaxBackoff, Now: opts.Now,
		OnDC: func(dc string, up bool) { m.PublicDCUp.WithLabelValues(dc).Set(boolFloat(up)) }})
	c := &Controller{cfg: cfg, log: log, metrics: m, shared: shared, gateways: map[string]*gatewaySyncer{}, now: opts.Now,
		leases: opts.Leases, replica: opts.Replica, started: opts.Now(), settle: 2*cfg.HA.SessionTTL + cfg.HA.LockDelay}
	templates := &templateCache{pub: opts.Public, now: opts.Now, ok: map[string]time.Time{}}
	for _, gc := range cfg.Gateways {
		store, ok := opts.Stores[gc.Name]
		if !ok {
			return nil, fmt.Errorf("new controller: no store for gateway %s", gc.Name)
		}
		g := &gatewaySyncer{
			cfg: gc, services: gc.Services, safety: cfg.Safety, markerInt: cfg.Mirror.MarkerInterval,
			maxSync: cfg.Mirror.MaxSyncAge, maxStale: cfg.Public.MaxStaleness, readConc: 2 * cfg.Public.MaxInFlightPerDC,
			replica: opts.Replica, shared: shared, store: store, templates: templates,
			enc: mirror.Encoder{Gateway: gc.Name, NodePrefix: cfg.Mirror.NodePrefix},
			log: log.With("gateway", gc.Name), metrics: m, now: opts.Now,
			runMu: make(chan struct{}, 1), loaded: make(chan struct{}), kick: make(chan struct{}, 1), applied: map[string]time.Time{}, covered: map[string]bool{},
			status:      GatewayStatus{Name: gc.Name, SourceDatacenter: gc.SourceDatacenter, Owned: opts.Leases == nil, Selection: gc.Services},
			failoverAny: cfg.Query.NearestN > 0, failoverDCs: cfg.Query.Datacenters,
		}
		if c.leases != nil {
			name := gc.Name
			g.onFenced = func(session string) { c.leases.Fenced(name, session) }
		}
		c.gateways[gc.Name] = g
		c.order = append(c.order, gc.Name)
		m.initGateway(gc.Name)
	}
	if opts.Detector != nil {
		c.detector = opts.Detector
		c.events = newEvents(c.order, opts.Detector)
	}
	if err := opts.Registerer.Register(newAgeCollector(func() map[string]time.Time {
		out := make(map[string]time.Time, len(c.gateways))
		for name, g := range c.gateways {
			// With replicas only the owner says how old the mirror is:
			// a standby's own age (since it started) would hide it.
			if c.leases != nil && !g.snapshot().Owned {
				continue
			}
			if t := g.lastSuccess(); !t.IsZero() {
				out[name] = t
			} else {
				out[name] = c.started
			}
		}
		return out
	}, opts.Now)); err != nil {
		return nil, fmt.Errorf("new controller: register metrics: %w", err)
	}
	return c, nil
}

// Gateways returns the configured gateway names in configuration order.
func (c *Controller) Gateways() []string { return append([]string(nil), c.order...) }

// UnknownGatewayError names a gateway that is not configured.
type UnknownGatewayError struct {
	Name  string
	Known []string
}

func (e *UnknownGatewayError) Error() string {
	return fmt.Sprintf("unknown gateway %q (known: %v)", e.Name, e.Known)
}

// Sync runs one reconcile now (forced resync, dry-run diff).
func (c *Controller) Sync(ctx context.Context, req Request) (Result, error) {
	g, ok := c.gateways[req.Gateway]
	if !ok {
		return Result{}, &UnknownGatewayError{Name: req.Gateway, Known: c.Gateways()}
	}
	if !req.DryRun && !c.isOwned(req.Gateway) {
		return Result{Gateway: req.Gateway}, fmt.Errorf("gateway %s: this replica does not hold its lock", req.Gateway)
	}
	return g.sync(ctx, req)
}

// Status is the controller's state for the admin API.
type Status struct {
	Gateways    []GatewayStatus
	Datacenters []DCHealth
}

// Status returns every gateway's status and per-DC read health.
func (c *Controller) Status() Status {
	st := Status{Datacenters: c.shared.Health()}
	for _, name := range c.order {
		st.Gateways = append(st.Gateways, c.gateways[name].snapshot())
	}
	return st
}

// Ready reports whether every gateway this replica writes has completed a
// full sync. It stays true through later source errors: the mirrors still
// serve.
//
// With leases (several replicas) a replica is ready once it knows, for
// every gateway, who owns it, every gateway it owns is synced, and it is
// not the preferred owner of a gateway nobody holds yet (it is about to
// take it). Before that, a standby that answered ready at once would let
// a rollout move on before any replica had synced anything. A gateway
// whose owner it still cannot learn after a takeover's bound (its
// dedicated cluster unreachable) no longer holds it back: one broken
// cluster must not stall every rollout, the fix's included (the session
// gauge and its alert report that cluster).
func (c *Controller) Ready() bool {
	if c.leases == nil {
		for _, g := range c.gateways {
			if !g.snapshot().Synced {
				return false
			}
		}
		return true
	}
	for _, o := range c.leases.Owners() {
		g, ok := c.gateways[o.Gateway]
		switch {
		case !ok:
			continue
		case !o.Known:
			if c.now().Sub(c.started) < c.settle {
				return false
			}
		case o.Self:
			if !g.snapshot().Synced {
				return false
			}
		case !o.Held && o.Preferred == c.replica:
			return false
		}
	}
	return true
}

func (c *Controller) isOwned(gateway string) bool {
	if c.leases == nil {
		return true
	}
	g, ok := c.gateways[gateway]
	return ok && g.lease.get() != nil
}

// Run runs every gateway's loop (schedule, retries, heartbeat) until ctx
// ends, then waits for running reconciles; a txn already sent is allowed
// to finish.
func (c *Controller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, name := range c.order {
		g := c.gateways[name]
		wg.Go(func() { c.gatewayLoop(ctx, g) })
		wg.Go(func() { g.heartbeatLoop(ctx, func() bool { return c.isOwned(g.cfg.Name) }) })
		if c.events != nil {
			wg.Go(func() { c.eventLoop(ctx, g) })
		}
	}
	if c.leases != nil {
		wg.Go(func() {
			if err := c.leases.Run(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("HA coordinator stopped: this replica writes nothing more", "error", err)
			}
		})
		wg.Go(func() { c.followLeases(ctx) })
	}
	if c.detector != nil {
		wg.Go(func() {
			if err := c.detector.Run(ctx, c.HandleEvent); err != nil && ctx.Err() == nil {
				c.log.Error("public change feed stopped; full reconciles continue on their schedule", "error", err)
			}
		})
	}
	c.log.Info("controller started", "gateways", len(c.order))
	<-ctx.Done()
	c.log.Info("shutting down: waiting for running reconciles")
	wg.Wait()
	c.log.Info("controller stopped")
	return nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
