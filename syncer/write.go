package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Reading the mirror into the model, and writing to it: every write goes
// through commit, with writeMu held, and keeps the model in step.

// fullReload: a full reconcile rereads the whole mirror at least this
// often, even when the catalog's indexes say nothing moved, to repair a
// write by someone else that landed right after one of ours (which the
// index check cannot tell from ours).
const fullReload = 30 * time.Minute

// loadModel reads the mirror. For a dry run it returns a private copy;
// otherwise it becomes the gateway's model. Event-driven commits may land
// while the cluster is being read: if one did, it is read again under the
// write lock, so the model never misses a write.
func (g *gatewaySyncer) loadModel(ctx context.Context, dry, force bool) (*State, error) {
	if dry {
		snap, err := g.store.Read(ctx)
		if err != nil {
			return nil, err
		}
		return &snap.State, nil
	}
	g.writeMu.Lock()
	seq, m, loadedAt := g.writes, g.model, g.loadedAt
	g.writeMu.Unlock()
	// The model is exact while the cluster's catalog has not moved since
	// this controller's last load or write: two tiny reads then replace a
	// read of every service. Every fullReload it is reread all the same.
	if m != nil && !force && g.now().Sub(loadedAt) < fullReload {
		if ok, err := g.store.Unchanged(ctx); err == nil && ok {
			return m, nil
		}
	}
	snap, err := g.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	if g.writes != seq {
		if snap, err = g.store.Load(ctx); err != nil {
			return nil, err
		}
	}
	g.modelMu.Lock()
	g.setModel(&snap.State)
	g.modelMu.Unlock()
	g.loadedAt = g.now()
	g.marker, g.covered = snap.Marker, snap.Coverage
	if g.covered == nil {
		g.covered = map[string]bool{}
	}
	return g.model, nil
}

// commit writes w (or, dry, applies it to the private model) and keeps the
// model in step. A conflict or a fence invalidates the model: the next
// reconcile reloads it. writeMu held.
func (g *gatewaySyncer) commit(ctx context.Context, model *State, w Write, dry bool) (Committed, error) {
	if dry {
		g.modelMu.Lock()
		model.Apply(w.Plan, nil)
		g.modelMu.Unlock()
		return Committed{Ops: opCount(w.Plan)}, nil
	}
	c, err := g.store.Commit(ctx, w)
	g.writes++
	if err != nil {
		g.fencedBy(err)
		g.modelMu.Lock()
		g.setModel(nil)
		g.modelMu.Unlock()
		return c, err
	}
	g.modelMu.Lock()
	model.Apply(w.Plan, c.Rejected)
	g.modelMu.Unlock()
	return c, nil
}

// touched are the services whose entries p changes for a reader (the
// change feed): those it sets or deletes, and every service with an
// instance on a node it updates, since an instance registered without an
// address of its own is served at its node's. writeMu held.
func touched(model *State, p Plan) []string {
	names := p.Services()
	updated := map[string]bool{}
	for _, n := range p.NodeSets {
		if !n.Create {
			updated[n.Node.Name] = true
		}
	}
	if len(updated) == 0 {
		return names
	}
	for k, s := range model.Services {
		if updated[k.Node] {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// fencedBy stops the gateway when err says a write was fenced: the
// session it carried no longer holds the lock.
func (g *gatewaySyncer) fencedBy(err error) {
	var f *FencedError
	if !errors.As(err, &f) {
		return
	}
	g.metrics.Fenced.WithLabelValues(g.cfg.Name).Inc()
	g.log.Error("write rejected by the HA fence: this replica no longer holds the gateway's lock; it stops writing the gateway", "session", f.Session)
	if g.onFenced != nil {
		g.onFenced(f.Session)
	}
}

func opCount(p Plan) int {
	return len(p.NodeSets) + len(p.ServiceSets) + len(p.ServiceDeletes) + len(p.NodeDeletes)
}

func (g *gatewaySyncer) noteRejected(res *Result, rej []Rejected) {
	for _, r := range rej {
		msg := fmt.Sprintf("%s %s/%s rejected by the dedicated cluster: %s", r.Kind, r.Node, r.ID, r.Reason)
		res.Problems = appendBounded(res.Problems, msg)
		g.log.Warn("dedicated cluster rejected a write", "kind", string(r.Kind), "node", r.Node, "service", r.Service, "id", r.ID, "reason", r.Reason)
	}
}

// noteGuard records (and, for a real run, logs and counts) the guard's
// verdict.
func (g *gatewaySyncer) noteGuard(res *Result, v GuardVerdict, dry bool) {
	res.DeletesHeld, res.HeldReason = v.Held, v.Reason
	if dry {
		return
	}
	if v.Forced > 0 {
		g.metrics.ForcedDeletes.WithLabelValues(g.cfg.Name).Add(float64(v.Forced))
		g.log.Warn("forced resync applies deletes above the guard", "deletes", v.Forced)
	}
	if v.Held > 0 {
		g.metrics.DeletesHeldTotal.WithLabelValues(g.cfg.Name).Add(float64(v.Held))
		g.log.Warn("deletes held", "deletes", v.Held, "reason", v.Reason)
	}
}

// future is a value computed in the background (the model, while the
// public side is read).
type future struct {
	done chan struct{}
	m    *State
	err  error
}

func newFuture() *future { return &future{done: make(chan struct{})} }

// resolved is a future that is already set.
func resolved(m *State) *future {
	f := newFuture()
	f.set(m, nil)
	return f
}

func (f *future) set(m *State, err error) {
	f.m, f.err = m, err
	close(f.done)
}

func (f *future) get(ctx context.Context) (*State, error) {
	select {
	case <-f.done:
		return f.m, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
