package syncer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/singleflight"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/mirror"
)

// gatewaySyncer reconciles one gateway's dedicated cluster. Reconciles of
// one gateway never overlap: runLock serialises the scheduled ones and the
// forced ones from the admin API. Status is kept under mu, which is never
// held across a network call.
type gatewaySyncer struct {
	cfg       config.Gateway
	public    config.Public
	query     config.Query
	safety    config.Safety
	markerInt time.Duration
	shared    *Shared
	source    *Source
	dedicated *Dedicated
	planner   Planner
	selector  Selector
	log       hclog.Logger
	metrics   *Metrics
	now       func() time.Time
	templates *templateCache

	runLock chan struct{}

	mu     sync.Mutex
	status GatewayStatus
	// markerAt is when the marker was last written (zero: unknown).
	markerAt time.Time
}

// GatewayStatus is what the admin API reports for a gateway.
type GatewayStatus struct {
	Name             string    `json:"name"`
	SourceDatacenter string    `json:"source_datacenter"`
	Synced           bool      `json:"synced"` // a complete full sync has happened since start
	Generation       uint64    `json:"generation"`
	LastRun          time.Time `json:"last_run"`
	LastSuccess      time.Time `json:"last_success"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorAt      time.Time `json:"last_error_at"`
	Services         int       `json:"services"`
	Instances        int       `json:"instances"`
	DeletesHeld      int       `json:"deletes_held"`
	HeldReason       string    `json:"held_reason,omitempty"`
	Kept             int       `json:"services_kept"`
}

func (g *gatewaySyncer) lock(ctx context.Context) error {
	select {
	case g.runLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway %s: waiting for the running sync: %w", g.cfg.Name, ctx.Err())
	}
}

func (g *gatewaySyncer) unlock() { <-g.runLock }

// sync runs one reconcile under the gateway's run lock.
func (g *gatewaySyncer) sync(ctx context.Context, req Request) (Result, error) {
	if err := g.lock(ctx); err != nil {
		return Result{Gateway: g.cfg.Name, Service: req.Service}, err
	}
	defer g.unlock()
	start := g.now()
	if req.Service == "" && !req.DryRun {
		// A reconcile slowed down by a slow public side can outlast the
		// resolvers' marker age: keep vouching for the (still maintained)
		// mirror while it runs. heartbeat is check-and-set guarded.
		hbCtx, stopHB := context.WithCancel(ctx)
		defer stopHB()
		go g.heartbeatWhile(hbCtx)
	}
	res, err := g.reconcile(ctx, req)
	if !req.DryRun {
		g.metrics.SyncDuration.WithLabelValues(g.cfg.Name, res.Scope).Observe(g.now().Sub(start).Seconds())
	}
	return res, err
}

func (g *gatewaySyncer) snapshot() GatewayStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// guard applies Guard with the gateway's state, and logs and counts.
func (g *gatewaySyncer) guard(p Plan, res Result, req Request, sourceComplete bool, current int) (Plan, Result) {
	g.mu.Lock()
	in := GuardInput{Safety: g.safety, Synced: g.status.Synced, FullScope: req.Service == "",
		SourceComplete: sourceComplete, Force: req.Force, Mirrored: current}
	if req.Service != "" && g.status.Instances > current {
		in.Mirrored = g.status.Instances // a single-service scope is judged against the whole mirror
	}
	g.mu.Unlock()
	v := Guard(p, in)
	if req.DryRun {
		res.DeletesHeld, res.HeldReason = v.Held, v.Reason
		return v.Plan, res
	}
	if v.Forced > 0 {
		g.metrics.ForcedDeletes.WithLabelValues(g.cfg.Name).Add(float64(v.Forced))
		g.log.Warn("forced resync applies deletes above the guard", "deletes", v.Forced, "mirrored", in.Mirrored)
	}
	if v.Held > 0 {
		res.DeletesHeld, res.HeldReason = v.Held, v.Reason
		g.metrics.DeletesHeldTotal.WithLabelValues(g.cfg.Name).Add(float64(v.Held))
		g.log.Warn("deletes held", "deletes", v.Held, "reason", v.Reason)
	}
	return v.Plan, res
}

// finish updates the marker, status and metrics after an applied reconcile.
func (g *gatewaySyncer) finish(ctx context.Context, res *Result, obs Observed, p Plan) {
	res.Finished = g.now()
	full := res.Scope == scopeFull
	if full && res.Complete {
		g.mu.Lock()
		due := !p.Empty() || g.markerAt.IsZero() || res.Finished.Sub(g.markerAt) >= g.markerInt
		gen := g.status.Generation + 1
		g.mu.Unlock()
		if due {
			m := mirror.Marker{Version: mirror.MarkerVersion, Gateway: g.cfg.Name, Generation: gen, SyncedAt: res.Finished,
				CheckedAt: res.Finished, Services: res.Services, Instances: res.Instances}
			if err := g.dedicated.WriteMarker(ctx, m); err != nil {
				res.Complete = false
				res.Errors = appendBounded(res.Errors, err.Error())
			} else {
				g.mu.Lock()
				g.markerAt, g.status.Generation = res.Finished, gen
				g.mu.Unlock()
			}
		}
	}
	if full && !res.Complete {
		g.heartbeat(ctx, res.Finished)
	}
	g.record(*res, nil)
}

// heartbeat refreshes the marker's CheckedAt after a full cycle that could
// not complete (public trouble), at most every marker interval, and only if
// the marker is still there: the mirror is still maintained, and during a
// public outage it is the best data a resolver can have. A cluster without a
// marker (restarted empty) gets one only from a complete sync.
func (g *gatewaySyncer) heartbeat(ctx context.Context, now time.Time) {
	g.mu.Lock()
	due := g.markerAt.IsZero() || now.Sub(g.markerAt) >= g.markerInt
	g.mu.Unlock()
	if !due {
		return
	}
	m, idx, found, err := g.dedicated.ReadMarker(ctx)
	if err != nil || !found {
		g.log.Debug("sync marker not refreshed", "found", found, "error", err)
		return
	}
	m.CheckedAt = now
	ok, err := g.dedicated.RefreshMarker(ctx, m, idx)
	if err != nil || !ok {
		g.log.Debug("sync marker not refreshed", "changed_meanwhile", !ok, "error", err)
		return
	}
	g.mu.Lock()
	g.markerAt = now
	g.mu.Unlock()
}

// record stores a reconcile's outcome in status and metrics.
func (g *gatewaySyncer) record(res Result, err error) {
	if res.DryRun {
		return
	}
	result := runSuccess
	switch {
	case err != nil && res.TxnOps == 0:
		result = runError
	case err != nil || !res.Complete:
		result = runPartial
	}
	g.metrics.SyncRuns.WithLabelValues(g.cfg.Name, res.Scope, result).Inc()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.status
	s.LastRun = res.Finished
	if len(res.Errors) > 0 {
		s.LastError, s.LastErrorAt = res.Errors[0], res.Finished
	}
	if res.Scope != scopeFull {
		return
	}
	if err == nil {
		s.Services, s.Instances = res.Services, res.Instances
		s.DeletesHeld, s.HeldReason, s.Kept = res.DeletesHeld, res.HeldReason, len(res.Kept)
		g.metrics.MirroredServices.WithLabelValues(g.cfg.Name).Set(float64(res.Services))
		g.metrics.MirroredInsts.WithLabelValues(g.cfg.Name).Set(float64(res.Instances))
		g.metrics.DeletesHeld.WithLabelValues(g.cfg.Name).Set(float64(res.DeletesHeld))
	}
	if res.Complete {
		s.Synced, s.LastSuccess = true, res.Finished
		g.metrics.LastSuccess.WithLabelValues(g.cfg.Name).Set(float64(res.Finished.UnixNano()) / 1e9)
	}
	if !s.LastSuccess.IsZero() {
		g.metrics.MirrorAge.WithLabelValues(g.cfg.Name).Set(res.Finished.Sub(s.LastSuccess).Seconds())
	}
}

// heartbeatWhile refreshes the marker every marker interval until ctx ends.
func (g *gatewaySyncer) heartbeatWhile(ctx context.Context) {
	t := time.NewTicker(g.markerInt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.heartbeat(ctx, g.now())
		}
	}
}

// loadMarker reads the marker left by an earlier run, so generations keep
// counting up and a restart does not rewrite an up-to-date marker at once.
func (g *gatewaySyncer) loadMarker(ctx context.Context) {
	m, _, found, err := g.dedicated.ReadMarker(ctx)
	if err != nil {
		g.log.Warn("could not read the sync marker; a new one will be written after the next complete sync", "error", err)
		return
	}
	if !found {
		return
	}
	g.mu.Lock()
	g.status.Generation = m.Generation
	g.mu.Unlock()
}

func (g *gatewaySyncer) ensureTemplate(ctx context.Context) error {
	return g.templates.ensure(ctx, g.cfg.SourceDatacenter, g.query.Manage, g.source)
}

// templateCache remembers in which DCs the template is known good, so it is
// checked once per templateRecheck, not on every cycle.
type templateCache struct {
	sf  singleflight.Group
	mu  sync.Mutex
	ok  map[string]time.Time
	now func() time.Time
}

// templateRecheck: someone may delete or edit the template; checking every
// 10 minutes costs one list call per source DC.
const templateRecheck = 10 * time.Minute

func (t *templateCache) ensure(ctx context.Context, dc string, manage bool, src *Source) error {
	t.mu.Lock()
	at, ok := t.ok[dc]
	t.mu.Unlock()
	if ok && t.now().Sub(at) < templateRecheck {
		return nil
	}
	// Gateways on one DC and the services of one reconcile share the check.
	_, err, _ := t.sf.Do(dc, func() (any, error) {
		var err error
		if manage {
			err = src.EnsureTemplate(ctx, dc)
		} else {
			err = src.CheckTemplate(ctx, dc)
		}
		if err == nil {
			t.mu.Lock()
			t.ok[dc] = t.now()
			t.mu.Unlock()
		}
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("prepared query template: %w", err)
	}
	return nil
}

// invalidate forgets that dc's template was good.
func (t *templateCache) invalidate(dc string) {
	t.mu.Lock()
	delete(t.ok, dc)
	t.mu.Unlock()
}
