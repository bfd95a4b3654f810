package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
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
	req   Request
	res   Result
	model *State // g.model, or a private copy for a dry run
	// targets: every service read, settled once its chunk is written.
	targets []target
	// evidence: every DC's catalog (trusted) and every service were read,
	// so a first sync may delete what is absent (the guard's input).
	evidence bool
	// sourceCatalog: the source DC's catalog was read; reads and
	// readErrs count the services read and those whose read failed, and
	// dcDown is set when a read found the source DC backed off.
	sourceCatalog bool
	reads         int
	readErrs      int
	dcDown        bool
	// failed is set once a commit failed: later chunks are not written.
	failed error
	plan   Tally // everything written (or, dry, planned)
	// minAt: no answer used started before it.
	minAt time.Time
}

func (g *gatewaySyncer) syncFull(ctx context.Context, req Request) (Result, error) {
	run := &fullRun{req: req, res: g.newResult(req, ScopeFull)}
	// Every answer a full reconcile uses started at or after minAt: one
	// share window before its start (it shares executions with other
	// gateways' reconciles and events that recent), or its start when
	// forced. The event path relies on it (fullCovers).
	run.minAt = run.res.Started.Add(-g.shared.window)
	if req.Force {
		run.minAt = run.res.Started
	}
	g.mu.Lock()
	// A new owner ignored the change events before it took the lease (and
	// the old owner dropped those it had queued): its reads start fresh.
	run.minAt = maxTime(run.minAt, g.ownedSince)
	// A change feed resync or a failed event round asked for a full
	// reconcile that covers its changes.
	run.minAt = maxTime(run.minAt, g.fullFloor)
	if !req.DryRun {
		g.fullMinAt = run.minAt
	}
	g.mu.Unlock()
	if err := g.templates.ensure(ctx, g.cfg.SourceDatacenter, !req.DryRun); err != nil {
		return g.fail(run.res, err)
	}
	disc, err := g.discover(ctx, run.minAt)
	if err != nil {
		return g.fail(run.res, err)
	}
	run.evidence = disc.complete
	run.sourceCatalog = !slices.Contains(disc.missing, g.cfg.SourceDatacenter)
	run.res.Errors = appendBounded(run.res.Errors, disc.errs...)
	g.logOnce("catalogs", strings.Join(disc.errs, "; "), "public catalogs incomplete this cycle", "errors", disc.errs)
	// The mirror is read while the public side is: both take seconds at
	// thousands of services, and reads of the public side need the model
	// only after their answer is in.
	model := newFuture()
	go func() { m, err := g.loadModel(ctx, req.DryRun, req.Force); model.set(m, err) }()
	g.readAndWrite(ctx, run, &disc, readRequest{disc: &disc, minAt: run.minAt, model: model, at: disc.at, dry: req.DryRun})
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
	res.Changes, res.ChangesOmitted = run.plan.Changes, run.plan.Omitted
	res.Adds, res.Updates, res.Deletes = run.plan.Adds, run.plan.Updates, run.plan.DeleteInstances
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

// finishFull plans the cycle's deletes against the model, passes them
// through the guard, and commits them with the cycle's records.
func (g *gatewaySyncer) finishFull(ctx context.Context, run *fullRun) {
	g.writeMu.Lock()
	defer g.writeMu.Unlock()
	run.settle(len(run.targets)) // every add and update is written: deletes are left
	dp := onlyDeletes(Diff(g.diffInput(run.model, run.targets, true)))
	v := Guard(dp, GuardInput{Safety: g.safety, Synced: g.readAll(), FullScope: true,
		SourceComplete: run.evidence, Force: run.req.Force, Mirrored: len(run.model.Services)})
	g.noteGuard(&run.res, v, run.req.DryRun)
	w := Write{Plan: v.Plan, Touched: touched(run.model, v.Plan)}
	complete := run.complete()
	if complete {
		w.Coverage = g.coverage(run, v.Plan)
		w.Marker = g.nextMarker(run, w)
	}
	if !run.req.DryRun && w.Plan.Empty() && w.Marker == nil && !coverageChanged(g.covered, w.Coverage) {
		run.res.Complete = complete
		run.res.evidence = run.evidence
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
	run.plan.Add(v.Plan)
	run.res.Complete = complete
	run.res.evidence = run.evidence
	g.completed(ctx, run, complete, &w)
}

// complete says whether the cycle leaves a maintained mirror, one the
// marker may vouch for: the source DC's catalog was read, and the source
// DC answered (not every read failed, none found it backed off). A failure
// that concerns one service (a bad name, a query that keeps timing out),
// or a DC the gateway does not need that is down, keeps that service's
// entries, is reported, and does not make the cycle incomplete: one bad
// entry, or one sick DC far away, must not unvouch every mirror. Deletes
// have their own, stricter evidence (every catalog, every confirmation).
func (r *fullRun) complete() bool {
	return r.sourceCatalog && !r.dcDown && (r.readErrs == 0 || r.readErrs < r.reads)
}

// onlyDeletes keeps a plan's deletes: the end of a full reconcile writes
// nothing else, whatever a target left unsettled would plan.
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

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
