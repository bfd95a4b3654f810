package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/mirror"
)

// The pipeline of a full reconcile: answers are read with bounded
// concurrency and written chunk by chunk as they arrive.

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
		run.reads++
		if g.classify(&run.res, &t) {
			run.evidence = false
			run.readErrs++
			run.dcDown = run.dcDown || errors.Is(t.err, ErrBackoff)
		}
		run.targets = append(run.targets, t)
		chunk = append(chunk, t)
		instances += len(t.desired)
		if len(chunk) >= flushServices || instances >= flushInstances {
			g.flush(ctx, run, r.model, chunk)
			run.settle(len(chunk))
			chunk, instances = nil, 0
			if run.failed != nil {
				cancel() // stop reading: nothing more will be written this cycle
			}
		}
	}
	g.flush(ctx, run, r.model, chunk)
}

// settle keeps of the last n targets what the end of the cycle plans
// deletes from (target.settle): their adds and updates are written (or,
// after a failed commit, never will be this cycle).
func (run *fullRun) settle(n int) {
	for i := len(run.targets) - n; i < len(run.targets); i++ {
		run.targets[i].settle()
	}
}

// settle drops what only adds and updates need: a settled target keeps
// its desired instances' keys (Written), not the instances and their
// nodes. A full reconcile holds every target until its end, and in full
// they were another copy of the gateway's whole desired mirror (issue 14).
func (t *target) settle() {
	if t.written != nil || t.desired == nil {
		return
	}
	t.written = make([]mirror.Key, len(t.desired))
	for i := range t.desired {
		t.written[i] = t.desired[i].Key()
	}
	t.desired, t.nodes = nil, nil
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
			g.logOnce("problem|"+t.name+"|"+p, "seen", "instance not mirrored", "service", t.name, "problem", p)
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
	run.plan.Add(p)
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
		if t.reason != "" {
			in.Reasons[t.name] = t.reason
		}
		if t.written != nil {
			if in.Written == nil {
				in.Written = map[string][]mirror.Key{}
			}
			in.Written[t.name] = t.written
			continue
		}
		in.Desired[t.name] = t.desired
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
