package syncer

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// The records a complete full reconcile writes with its last txn (see
// mirror for what readers do with them): the coverage (which services the
// mirror is authoritative for) and the marker (a complete mirror, vouched
// for). The marker's heartbeat runs on a timer of its own.

// coverage is the set of services the mirror is authoritative for after a
// complete cycle: every service with an instance in the model once the
// cycle's last plan is applied. That is what the cycle (and any
// event-driven reconcile that ran meanwhile) wrote, and what was kept as
// the last good answer. A service with no instance is not covered,
// confirmed or not: a reader asks the public cluster (which answers "none")
// instead of trusting an empty mirror, and coverage does not flip-flop as
// a service's entries are deleted and it then stays empty; a service whose
// every instance the cluster refused is not covered either. writeMu held.
func (g *gatewaySyncer) coverage(run *fullRun, last Plan) map[string]bool {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	return servicesAfter(run.model, last)
}

func coverageChanged(old, next map[string]bool) bool {
	return next != nil && !maps.Equal(old, next)
}

// nextMarker returns the marker to write with a complete cycle, or nil when
// the one in the cluster already says everything (nothing changed, even
// for a controller that just started or took the gateway over): the
// heartbeat keeps it fresh, so a steady state writes nothing. Its counts
// are part of what it says: the cycle's earlier chunks and event-driven
// reconciles since the last marker write may have changed them while the
// final txn has nothing to write.
func (g *gatewaySyncer) nextMarker(run *fullRun, w Write) *mirror.Marker {
	g.modelMu.RLock()
	services, instances := countsAfter(run.model, w.Plan)
	g.modelMu.RUnlock()
	if g.marker != nil && w.Plan.Empty() && !coverageChanged(g.covered, w.Coverage) &&
		g.marker.Services == services && g.marker.Instances == instances {
		return nil
	}
	// Generations never go back while this controller runs, even when the
	// marker vanished with a cluster that restarted empty.
	gen := g.snapshot().Generation + 1
	if g.marker != nil {
		gen = max(gen, g.marker.Generation+1)
	}
	now := g.now()
	return &mirror.Marker{Version: mirror.MarkerVersion, Gateway: g.cfg.Name, Generation: gen, SyncedAt: now, CheckedAt: now,
		Services: services, Instances: instances, Replica: g.replica}
}

// countsAfter returns the services and instances model holds once p's
// deletes are applied.
func countsAfter(model *State, p Plan) (services, instances int) {
	if len(p.Removed) == 0 {
		return model.Counts()
	}
	left := servicesAfter(model, p)
	return len(left), len(model.Services) - len(p.Removed)
}

// servicesAfter are the services with an instance in model once p's
// deletes are applied.
func servicesAfter(model *State, p Plan) map[string]bool {
	removed := make(map[mirror.Key]bool, len(p.Removed))
	for _, k := range p.Removed {
		removed[k] = true
	}
	left := make(map[string]bool, len(model.byName))
	for name, keys := range model.byName {
		for _, k := range keys {
			if !removed[k] {
				left[name] = true
				break
			}
		}
	}
	return left
}

// completed runs after the last commit of a full cycle (w: what it wrote,
// nil if nothing). writeMu held.
func (g *gatewaySyncer) completed(ctx context.Context, run *fullRun, complete bool, w *Write) {
	if run.req.DryRun || !complete {
		return
	}
	if w != nil {
		if w.Coverage != nil {
			g.covered = w.Coverage
		}
		if w.Marker != nil {
			g.marker = w.Marker
		}
	}
	g.mu.Lock()
	if g.marker != nil { // as written, or as loaded when unchanged (a new owner)
		g.status.Generation = g.marker.Generation
	}
	g.status.Covered = len(g.covered)
	g.status.Vouching = true
	g.mu.Unlock()
	// The local query template is part of the mirror contract: it exists
	// only next to a complete mirror. EnsureLocalTemplate writes only when
	// it is missing or differs.
	if err := g.store.EnsureLocalTemplate(ctx); err != nil {
		run.res.Errors = appendBounded(run.res.Errors, "local query template: "+err.Error())
		g.log.Warn("local prepared query template not written", "error", err)
	}
}

// heartbeatLoop refreshes the marker every marker interval while this
// replica writes the gateway, as long as the last complete sync is younger
// than max_sync_age: after that, the controller stops vouching for the
// mirror, and resolvers fall back to the public cluster once the marker
// ages past their max_marker_age.
func (g *gatewaySyncer) heartbeatLoop(ctx context.Context, owned func() bool) {
	t := time.NewTicker(g.markerInt)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if owned() {
				g.heartbeat(ctx)
			}
		}
	}
}

func (g *gatewaySyncer) heartbeat(ctx context.Context) {
	last := g.lastSuccess()
	vouch := !last.IsZero() && g.now().Sub(last) <= g.maxSync
	g.mu.Lock()
	was := g.status.Vouching
	g.status.Vouching = vouch
	g.mu.Unlock()
	if !vouch {
		if was {
			g.log.Warn("no complete sync for longer than max_sync_age: the marker is no longer refreshed, resolvers will fall back to the public cluster",
				"last_complete_sync", last, "max_sync_age", g.maxSync)
		}
		return
	}
	// Under the write lock: a commit's marker check-and-set and this one
	// must not race (either would fail the other for nothing).
	g.writeMu.Lock()
	ok, err := g.store.Heartbeat(ctx, g.now())
	g.writeMu.Unlock()
	switch {
	case errors.Is(err, ErrFenced):
		g.fencedBy(err)
	case err != nil:
		g.log.Warn("sync marker not refreshed", "error", err)
	case !ok:
		g.log.Warn("sync marker missing or changed: not refreshed; the next full reconcile rewrites it")
		g.requestFull()
	default:
		g.metrics.Heartbeats.WithLabelValues(g.cfg.Name).Inc()
	}
}
