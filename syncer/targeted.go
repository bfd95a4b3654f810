package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gwsync/gwsync/mirror"
	"golang.org/x/sync/errgroup"
)

// errNotLoaded: a targeted reconcile needs the model a full reconcile
// loads; until then events wait for the full one (which reads everything).
var errNotLoaded = errors.New("mirror not loaded yet: the change waits for the full reconcile that loads it")

// syncServices reconciles some services of the gateway: an event-driven
// reconcile (req.minAt set: the answers must be newer than the change) or
// a forced resync or dry run of one service. It reads no catalog: the
// services' names are known; the answer (and, for an empty one, the
// confirmation in every DC the query can use) decides. Selection by tags
// and deselection are left to full reconciles.
func (g *gatewaySyncer) syncServices(ctx context.Context, req Request) (Result, error) {
	scope := ScopeServices
	if !req.minAt.IsZero() {
		scope = ScopeEvent
	}
	res := g.newResult(req, scope)
	names := slices.Compact(slices.Sorted(slices.Values(req.Services)))
	model, whole, err := g.targetModel(ctx, req, names)
	if errors.Is(err, errNotLoaded) { // not a failure: the change waits
		return res, err
	}
	if err != nil {
		return g.fail(res, err)
	}
	if err := g.templates.ensure(ctx, g.cfg.SourceDatacenter, !req.DryRun); err != nil {
		return g.fail(res, err)
	}
	minAt := req.minAt
	if req.Force {
		minAt = g.now()
	}
	targets := g.readTargets(ctx, readRequest{minAt: minAt, model: resolved(model), at: g.now(), dry: req.DryRun}, names, req.Progress)
	complete := true
	for i := range targets {
		if g.classify(&res, &targets[i]) {
			complete = false
			res.unread = append(res.unread, targets[i].name)
		}
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	if !req.DryRun {
		// A full reconcile may have reloaded the model while the answers
		// were read: plan and apply against the current one.
		if model, whole = g.model, true; model == nil {
			return res, errNotLoaded
		}
	}
	in := g.diffInput(model, targets, whole)
	in.OnlyEmptied = true
	p := Diff(in)
	v := Guard(p, GuardInput{Safety: g.safety, Synced: g.readAll(), SourceComplete: complete, Force: req.Force, Mirrored: len(model.Services)})
	g.noteGuard(&res, v, req.DryRun)
	w := Write{Plan: v.Plan, Touched: touched(model, v.Plan)}
	var coverAdd []string
	if !req.DryRun {
		coverAdd, w.CoverDel = g.coverChanges(model, targets, v.Plan)
	}
	if w.Plan.Empty() { // nothing to land first: the coverage goes alone
		w.CoverAdd, coverAdd = coverAdd, nil
	}
	// A service becomes covered only once its instances have landed: the
	// cluster may refuse them (an ACL), and a covered service with no
	// entry would be answered "no instances" by every resolver.
	if err := g.applyTargeted(ctx, &res, model, w, req.DryRun); err != nil {
		return res, err
	}
	if err := g.applyTargeted(ctx, &res, model, Write{CoverAdd: g.holding(model, coverAdd)}, req.DryRun); err != nil {
		return res, err
	}
	g.markApplied(targets, req.DryRun)
	res.Changes = v.Plan.Changes
	res.Adds, res.Updates, res.Deletes = v.Plan.Counts()
	res.Complete = complete
	res.Finished = g.now()
	g.modelMu.RLock()
	res.MirroredServices, res.MirroredInstances = model.Counts()
	g.modelMu.RUnlock()
	g.record(res, nil)
	return res, nil
}

// targetModel is the state a targeted reconcile plans against: the model;
// for a forced or dry run, the model with these services read fresh from
// the cluster (a forced resync repairs entries changed by hand). whole:
// it holds every owned entry (not only these services'), so a node left
// without services can be deleted.
func (g *gatewaySyncer) targetModel(ctx context.Context, req Request, names []string) (model *State, whole bool, err error) {
	g.modelMu.RLock()
	model = g.model
	g.modelMu.RUnlock()
	if !req.Force && !req.DryRun {
		if model == nil {
			return nil, false, errNotLoaded
		}
		return model, true, nil
	}
	snap, err := g.store.LoadServices(ctx, names)
	if err != nil {
		return nil, false, fmt.Errorf("read dedicated cluster: %w", err)
	}
	if req.DryRun || model == nil {
		if model != nil { // plan against the model's other services too
			g.modelMu.RLock()
			c := model.Clone()
			g.modelMu.RUnlock()
			replaceServices(&c, &snap.State, names)
			return &c, true, nil
		}
		return &snap.State, false, nil
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	if g.model == nil {
		return &snap.State, false, nil
	}
	g.modelMu.Lock()
	replaceServices(g.model, &snap.State, names)
	g.modelMu.Unlock()
	return g.model, true, nil
}

// replaceServices makes dst's entries for names (and their nodes) those of
// src.
func replaceServices(dst, src *State, names []string) {
	for _, n := range names {
		for _, s := range dst.Instances(n) {
			dst.DeleteService(s.Key())
		}
		for _, s := range src.Instances(n) {
			dst.PutService(s)
			if node, ok := src.Nodes[s.Node]; ok {
				dst.Nodes[s.Node] = node
			}
		}
	}
	for name, o := range src.Foreign {
		dst.Foreign[name] = o
	}
}

// readTargets reads the source for names with bounded concurrency.
func (g *gatewaySyncer) readTargets(ctx context.Context, r readRequest, names []string, progress func(done, total int)) []target {
	out := make([]target, len(names))
	var mu sync.Mutex
	done := 0
	var eg errgroup.Group
	eg.SetLimit(g.readConc)
	for i, name := range names {
		eg.Go(func() error {
			out[i] = g.safeRead(ctx, r, name)
			if progress != nil {
				mu.Lock()
				done++
				progress(done, len(names))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait()
	return out
}

// applyTargeted commits w (if it writes anything) and keeps the coverage
// in step; a failure is recorded. writeMu held.
func (g *gatewaySyncer) applyTargeted(ctx context.Context, res *Result, model *State, w Write, dry bool) error {
	if w.Plan.Empty() && len(w.CoverAdd)+len(w.CoverDel) == 0 {
		return nil
	}
	c, err := g.commit(ctx, model, w, dry)
	res.TxnOps += c.Ops
	g.noteRejected(res, c.Rejected)
	if err != nil {
		res.Errors = appendBounded(res.Errors, "apply: "+err.Error())
		res.Finished = g.now()
		g.record(*res, err)
		return fmt.Errorf("apply: %w", err)
	}
	if !dry && len(w.CoverAdd)+len(w.CoverDel) > 0 {
		for _, s := range w.CoverAdd {
			g.covered[s] = true
		}
		for _, s := range w.CoverDel {
			delete(g.covered, s)
		}
		g.mu.Lock()
		g.status.Covered = len(g.covered)
		g.mu.Unlock()
	}
	return nil
}

// holding keeps the services of names model holds an instance of (after
// a commit: the instances the cluster took). writeMu held.
func (g *gatewaySyncer) holding(model *State, names []string) []string {
	g.modelMu.RLock()
	defer g.modelMu.RUnlock()
	var out []string
	for _, n := range names {
		if model.Has(n) {
			out = append(out, n)
		}
	}
	return out
}

// coverChanges: a service this reconcile leaves with instances becomes
// covered; one it leaves with none (its last instances deleted, confirmed
// empty) leaves the coverage, as a full reconcile would have it. writeMu
// held.
func (g *gatewaySyncer) coverChanges(model *State, targets []target, p Plan) (add, del []string) {
	removed := make(map[mirror.Key]bool, len(p.Removed))
	for _, k := range p.Removed {
		removed[k] = true
	}
	for _, t := range targets {
		if !t.auth || g.superseded(t) {
			continue
		}
		left := len(t.desired) > 0
		for _, k := range model.byName[t.name] {
			if !removed[k] {
				left = true
				break
			}
		}
		switch {
		case left && !g.covered[t.name]:
			add = append(add, t.name)
		case !left && g.covered[t.name]:
			del = append(del, t.name)
		}
	}
	return add, del
}
