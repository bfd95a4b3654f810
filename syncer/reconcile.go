package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/mirror"
)

// A full reconcile, top to bottom:
//
//  1. desired state: the public catalogs (which services exist, with which
//     tags), then one prepared-query execution per service in scope
//     (shared with the other gateways on the source DC);
//  2. write, pipelined: as soon as a chunk of services is read, its adds
//     and updates are planned against the model and committed, while the
//     next chunk is read;
//  3. guard: once every service is read, the deletes of the whole cycle
//     pass the delete guard (no deletes on incomplete evidence, none past
//     max_delete_fraction unless forced) and are committed;
//  4. records: a complete cycle writes the coverage and the marker in the
//     same txn as its last writes; the local query template follows;
//  5. status and metrics.
//
// Events (a change seen on the public side) and forced resyncs of some
// services run syncServices (targeted.go): the same steps for a few
// services, against the model, without the catalog read.

// flushServices and flushInstances bound a chunk: small enough that the
// first writes land while most of the catalog is still being read, large
// enough that a chunk's commit fills a few 128-op txns.
const (
	flushServices  = 64
	flushInstances = 512
)

// sync runs one reconcile of the whole gateway or of req.Services.
func (g *gatewaySyncer) sync(ctx context.Context, req Request) (Result, error) {
	if len(req.Services) > 0 {
		return g.syncServices(ctx, req)
	}
	if !g.lockRun(ctx.Done()) {
		return g.newResult(req, ScopeFull), fmt.Errorf("gateway %s: waiting for the running sync: %w", g.cfg.Name, ctx.Err())
	}
	defer g.unlockRun()
	return g.syncFull(ctx, req)
}

func (g *gatewaySyncer) newResult(req Request, scope string) Result {
	return Result{Gateway: g.cfg.Name, Services: req.Services, Scope: scope, DryRun: req.DryRun, Started: g.now(), Kept: map[string]string{},
		Selection: g.services}
}

// fullRun is the state of one full reconcile.
type fullRun struct {
	req     Request
	res     Result
	model   *State // g.model, or a private copy for a dry run
	targets []target
	// sourceComplete: every DC's catalog and every service were read.
	sourceComplete bool
	// failed is set once a commit failed: later chunks are not written.
	failed error
	plan   Plan // everything written (or, dry, planned)
}

func (g *gatewaySyncer) syncFull(ctx context.Context, req Request) (Result, error) {
	run := &fullRun{req: req, res: g.newResult(req, ScopeFull)}
	if !req.DryRun {
		g.mu.Lock()
		g.fullStart = run.res.Started
		g.mu.Unlock()
	}
	if err := g.templates.ensure(ctx, g.cfg.SourceDatacenter, !req.DryRun); err != nil {
		return g.fail(run.res, err)
	}
	var minAt time.Time
	if req.Force {
		minAt = g.now()
	}
	disc, err := g.discover(ctx, minAt)
	if err != nil {
		return g.fail(run.res, err)
	}
	run.sourceComplete = disc.complete
	// The mirror is read while the public side is: both take seconds at
	// thousands of services, and reads of the public side need the model
	// only after their answer is in.
	model := newFuture()
	go func() { m, err := g.loadModel(ctx, req.DryRun); model.set(m, err) }()
	g.readAndWrite(ctx, run, &disc, readRequest{disc: &disc, minAt: minAt, model: model})
	if run.model == nil && run.failed == nil {
		m, err := model.get(ctx)
		if err != nil {
			return g.fail(run.res, fmt.Errorf("read dedicated cluster: %w", err))
		}
		run.model = m
	}
	if run.model == nil {
		return g.fail(run.res, run.failed)
	}
	if run.failed == nil && ctx.Err() == nil {
		g.finishFull(ctx, run)
	}
	res := run.res
	res.Finished = g.now()
	res.Changes = run.plan.Changes
	res.Adds, res.Updates, res.Deletes = run.plan.Counts()
	g.modelMu.RLock()
	res.MirroredServices, res.MirroredInstances = run.model.Counts()
	g.modelMu.RUnlock()
	err = run.failed
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		res.Complete = false
		res.Errors = appendBounded(res.Errors, err.Error())
	}
	g.record(res, err)
	g.shared.Prune()
	return res, err
}

// selectedNames are the services the discovery selects, sorted.
func (g *gatewaySyncer) selectedNames(d *discovery) []string {
	var out []string
	for name, tags := range d.tags {
		if g.services.Selects(name, tags) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// readAndWrite reads the source for every selected service, then (once the
// model is in) for every mirrored one not selected, with bounded
// concurrency, and commits adds and updates chunk by chunk as the answers
// arrive.
func (g *gatewaySyncer) readAndWrite(ctx context.Context, run *fullRun, d *discovery, r readRequest) {
	out := make(chan target, flushServices)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(out)
		var done, total int
		var mu sync.Mutex
		eg, ectx := errgroup.WithContext(rctx)
		eg.SetLimit(g.readConc)
		read := func(name string) {
			eg.Go(func() error {
				t := g.safeRead(ectx, r, name)
				select {
				case out <- t:
				case <-ectx.Done():
					return ectx.Err()
				}
				if run.req.Progress != nil {
					mu.Lock()
					done++
					run.req.Progress(done, total)
					mu.Unlock()
				}
				return nil
			})
		}
		selected := g.selectedNames(d)
		mu.Lock()
		total = len(selected)
		mu.Unlock()
		for _, name := range selected {
			read(name)
		}
		if m, err := r.model.get(ectx); err == nil {
			g.modelMu.RLock()
			var extra []string
			for _, name := range m.ServiceNames() {
				if _, ok := slices.BinarySearch(selected, name); !ok {
					extra = append(extra, name)
				}
			}
			g.modelMu.RUnlock()
			mu.Lock()
			total += len(extra)
			mu.Unlock()
			for _, name := range extra {
				read(name)
			}
		}
		_ = eg.Wait() // readService reports through target.err
	}()
	var chunk []target
	instances := 0
	for t := range out {
		if errors.Is(t.err, errModelLoad) {
			continue // the cycle fails on the mirror read itself
		}
		if g.classify(&run.res, &t) {
			run.sourceComplete = false
		}
		run.targets = append(run.targets, t)
		chunk = append(chunk, t)
		instances += len(t.desired)
		if len(chunk) >= flushServices || instances >= flushInstances {
			g.flush(ctx, run, r.model, chunk)
			chunk, instances = nil, 0
			if run.failed != nil {
				cancel() // stop reading: nothing more will be written this cycle
			}
		}
	}
	g.flush(ctx, run, r.model, chunk)
}

// classify records a target's errors, problems and kept reason in res; it
// reports whether the source read failed.
func (g *gatewaySyncer) classify(res *Result, t *target) (failed bool) {
	switch {
	case t.err != nil:
		failed = true
		res.Kept[t.name] = "source read failed"
		res.Errors = appendBounded(res.Errors, t.err.Error())
		g.metrics.ServiceErrors.WithLabelValues(g.cfg.Name).Inc()
	case !t.auth && t.reason != "":
		res.Kept[t.name] = t.reason
	}
	if len(t.problems) > 0 {
		res.Problems = appendBounded(res.Problems, t.problems...)
		for _, p := range t.problems {
			g.log.Warn("instance not mirrored", "service", t.name, "problem", p)
		}
	}
	return failed
}

// flush plans a chunk's adds and updates against the model and commits
// them (deletes wait for the end of the cycle and the guard).
func (g *gatewaySyncer) flush(ctx context.Context, run *fullRun, model *future, chunk []target) {
	if len(chunk) == 0 || run.failed != nil || ctx.Err() != nil {
		return
	}
	if run.model == nil {
		m, err := model.get(ctx)
		if err != nil {
			run.failed = fmt.Errorf("read dedicated cluster: %w", err)
			return
		}
		run.model = m
	}
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	in := g.diffInput(run.model, chunk, false)
	p := Diff(in).WithoutDeletes()
	if p.Empty() {
		g.markApplied(chunk, run.req.DryRun)
		return
	}
	c, err := g.commit(ctx, run.model, Write{Plan: p, Touched: touched(run.model, p)}, run.req.DryRun)
	run.res.TxnOps += c.Ops
	g.noteRejected(&run.res, c.Rejected)
	if err != nil {
		run.failed = fmt.Errorf("apply: %w", err)
		return
	}
	run.plan.Merge(p)
	g.markApplied(chunk, run.req.DryRun)
}

// diffInput is the Diff input for the authoritative targets of a chunk
// whose answers are not older than what the mirror already holds.
func (g *gatewaySyncer) diffInput(model *State, ts []target, deleteEmptyNodes bool) DiffInput {
	in := DiffInput{Actual: model, Desired: map[string][]mirror.Service{}, DesiredNodes: map[string]mirror.Node{},
		Reasons: map[string]string{}, DeleteEmptyNodes: deleteEmptyNodes}
	for _, t := range ts {
		if !t.auth || g.superseded(t) {
			continue
		}
		in.Desired[t.name] = t.desired
		if t.reason != "" {
			in.Reasons[t.name] = t.reason
		}
		for _, n := range t.nodes {
			in.DesiredNodes[n.Name] = n
		}
	}
	return in
}

// superseded reports whether a newer answer for t's service has been
// applied since t was read (an event-driven reconcile ran meanwhile).
// Called with writeMu held.
func (g *gatewaySyncer) superseded(t target) bool {
	at, ok := g.applied[t.name]
	return ok && !t.at.IsZero() && at.After(t.at)
}

// markApplied records the answers of ts as the mirror's. writeMu held.
func (g *gatewaySyncer) markApplied(ts []target, dry bool) {
	if dry {
		return
	}
	for _, t := range ts {
		if t.auth && !t.at.IsZero() && !g.superseded(t) {
			g.applied[t.name] = t.at
		}
	}
}

// finishFull plans the cycle's deletes against the model, passes them
// through the guard, and commits them with the cycle's records.
func (g *gatewaySyncer) finishFull(ctx context.Context, run *fullRun) {
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	all := Diff(g.diffInput(run.model, run.targets, true))
	dp := onlyDeletes(all)
	v := Guard(dp, GuardInput{Safety: g.safety, Synced: g.snapshot().Synced, FullScope: true,
		SourceComplete: run.sourceComplete, Force: run.req.Force, Mirrored: len(run.model.Services)})
	g.noteGuard(&run.res, v, run.req.DryRun)
	w := Write{Plan: v.Plan, Touched: touched(run.model, v.Plan)}
	complete := run.sourceComplete
	if complete {
		w.Coverage = g.coverage(run)
		w.Marker = g.nextMarker(run, w)
	}
	if !run.req.DryRun && w.Plan.Empty() && w.Marker == nil && !coverageChanged(g.covered, w.Coverage) {
		run.res.Complete = complete
		g.completed(ctx, run, complete, nil)
		return
	}
	c, err := g.commit(ctx, run.model, w, run.req.DryRun)
	run.res.TxnOps += c.Ops
	g.noteRejected(&run.res, c.Rejected)
	if err != nil {
		run.failed = fmt.Errorf("apply: %w", err)
		return
	}
	run.plan.Merge(v.Plan)
	run.res.Complete = complete
	g.completed(ctx, run, complete, &w)
}

// onlyDeletes keeps a plan's deletes.
func onlyDeletes(p Plan) Plan {
	out := Plan{ServiceDeletes: p.ServiceDeletes, NodeDeletes: p.NodeDeletes, Removed: p.Removed, DeleteInstances: p.DeleteInstances}
	for _, c := range p.Changes {
		if c.Op == OpDelete {
			out.Changes = append(out.Changes, c)
		}
	}
	return out
}

// fail ends a reconcile that could not start (template, catalog, mirror).
func (g *gatewaySyncer) fail(res Result, err error) (Result, error) {
	res.Finished = g.now()
	res.Errors = appendBounded(res.Errors, err.Error())
	g.record(res, err)
	return res, err
}

// fullReload: a full reconcile rereads the whole mirror at least this
// often, even when the catalog's indexes say nothing moved, to repair a
// write by someone else that landed right after one of ours (which the
// index check cannot tell from ours).
const fullReload = 30 * time.Minute

// loadModel reads the mirror. For a dry run it returns a private copy;
// otherwise it becomes the gateway's model. Event-driven commits may land
// while the cluster is being read: if one did, it is read again under the
// write lock, so the model never misses a write.
func (g *gatewaySyncer) loadModel(ctx context.Context, dry bool) (*State, error) {
	if dry {
		snap, err := g.store.Load(ctx)
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
	if m != nil && g.now().Sub(loadedAt) < fullReload {
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
	g.model = &snap.State
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
		if errors.Is(err, ErrFenced) {
			g.metrics.Fenced.WithLabelValues(g.cfg.Name).Inc()
			g.log.Error("write rejected by the HA fence: this replica no longer holds the gateway's lock; it stops writing the gateway")
			if g.onFenced != nil {
				g.onFenced()
			}
		}
		g.modelMu.Lock()
		g.model = nil
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
