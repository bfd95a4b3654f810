package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/syncer"
)

const (
	// DefaultMaxFinished bounds the finished resync records kept for
	// GET /v1/resync/<id>; the oldest finished record is dropped first.
	DefaultMaxFinished = 64
	// DefaultMaxRunning bounds resyncs accepted and not yet finished. A
	// gateway's reconciles are serialised, so resyncs beyond this would only
	// queue up behind each other; the API answers 429 instead.
	DefaultMaxRunning = 16
	// DefaultResyncTimeout bounds one gateway's part of a resync. A full
	// reconcile of a large mirror over a slow WAN takes tens of seconds;
	// ten minutes only catches a reconcile that is stuck.
	DefaultResyncTimeout = 10 * time.Minute
)

// errTooMany: the running-resync bound is reached.
var errTooMany = errors.New("too many resyncs in progress")

// jobs runs forced resyncs in the background and keeps their records.
type jobs struct {
	ctrl        Controller
	log         hclog.Logger
	metrics     *metrics
	now         func() time.Time
	timeout     time.Duration
	maxRunning  int
	maxFinished int

	mu       sync.Mutex
	byID     map[string]*Resync
	finished []string // IDs, oldest first
	running  int
	wg       sync.WaitGroup
}

// part is one gateway of a resync; skip: another replica writes it.
type part struct {
	gateway string
	skip    bool
	owner   *Owner
}

// start records a new resync of parts and runs it in the background under
// ctx. It returns a copy of the record as accepted.
func (j *jobs) start(ctx context.Context, req ResyncRequest, parts []part) (Resync, error) {
	r := &Resync{ID: newID(), Gateway: req.Gateway, Service: req.Service, Force: req.Force, State: StateRunning, Created: j.now()}
	for _, p := range parts {
		g := ResyncGateway{Gateway: p.gateway, State: StatePending}
		if p.skip {
			g.State, g.Owner = StateSkipped, p.owner
		}
		r.Gateways = append(r.Gateways, g)
	}
	j.mu.Lock()
	if j.running >= j.maxRunning {
		j.mu.Unlock()
		return Resync{}, errTooMany
	}
	j.running++
	j.byID[r.ID] = r
	accepted := clone(r)
	j.mu.Unlock()
	j.metrics.resyncsRunning.Inc()
	j.log.Info("resync accepted", "id", r.ID, "gateway", req.Gateway, "service", req.Service, "force", req.Force)
	j.wg.Go(func() { j.run(ctx, r) })
	return accepted, nil
}

// run reconciles each gateway in turn: one at a time, so a resync of every
// gateway does not multiply the load on the public cluster. The resync
// succeeds when every part it ran succeeded (skipped parts are another
// replica's).
func (j *jobs) run(ctx context.Context, r *Resync) {
	for i := range r.Gateways {
		if r.Gateways[i].State != StateSkipped { // set before the job started, never changed
			j.runGateway(ctx, r, i)
		}
	}
	j.mu.Lock()
	r.State = StateSucceeded
	for _, g := range r.Gateways {
		if g.State != StateSucceeded && g.State != StateSkipped {
			r.State = StateFailed
		}
	}
	r.Finished = j.now()
	done := clone(r)
	j.running--
	j.finished = append(j.finished, r.ID)
	for len(j.finished) > j.maxFinished {
		delete(j.byID, j.finished[0])
		j.finished = j.finished[1:]
	}
	j.mu.Unlock()
	j.metrics.resyncsRunning.Dec()
	j.metrics.resyncs.WithLabelValues(scopeOf(done.Gateway, done.Service), boolLabel(done.Force), done.State).Inc()
	j.log.Info("resync finished", "id", done.ID, "state", done.State, "adds", done.Adds, "updates", done.Updates,
		"deletes", done.Deletes, "deletes_held", done.DeletesHeld, "duration", done.Finished.Sub(done.Created).Round(time.Millisecond))
}

func (j *jobs) runGateway(ctx context.Context, r *Resync, i int) {
	j.mu.Lock()
	g := &r.Gateways[i]
	g.State, g.Started = StateRunning, j.now()
	req := toRequest(ResyncRequest{Gateway: g.Gateway, Service: r.Service, Force: r.Force}, false)
	j.mu.Unlock()
	req.Progress = func(done, total int) {
		j.mu.Lock()
		defer j.mu.Unlock()
		r.Done += done - g.Done
		r.Total += total - g.Total
		g.Done, g.Total = done, total
	}
	gctx, cancel := context.WithTimeout(ctx, j.timeout)
	res, err := j.sync(gctx, req)
	cancel()
	j.mu.Lock()
	defer j.mu.Unlock()
	g.Finished = j.now()
	g.Complete = res.Complete
	g.Adds, g.Updates, g.Deletes, g.DeletesHeld, g.HeldReason = res.Adds, res.Updates, res.Deletes, res.DeletesHeld, res.HeldReason
	g.Kept, g.Errors, g.Problems = nonEmpty(res.Kept), res.Errors, res.Problems
	if err != nil && len(g.Errors) == 0 {
		g.Errors = []string{err.Error()}
	}
	r.Adds += res.Adds
	r.Updates += res.Updates
	r.Deletes += res.Deletes
	r.DeletesHeld += res.DeletesHeld
	g.State = StateSucceeded
	if err != nil || !res.Complete {
		g.State = StateFailed
	}
}

// sync runs one reconcile; a panic is logged with its stack and becomes
// the part's error, so a bug in one reconcile fails its resync instead of
// the process (the job runs on a goroutine of its own, outside any
// recovery of the controller's).
func (j *jobs) sync(ctx context.Context, req syncer.Request) (res syncer.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			j.metrics.panics.Inc()
			j.log.Error("resync panicked", "gateway", req.Gateway, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res, err = syncer.Result{Gateway: req.Gateway}, fmt.Errorf("reconcile panicked: %v", p)
		}
	}()
	return j.ctrl.Sync(ctx, req)
}

// get returns a copy of the record with id.
func (j *jobs) get(id string) (Resync, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.byID[id]
	if !ok {
		return Resync{}, false
	}
	return clone(r), true
}

// list returns copies of every kept record, newest first.
func (j *jobs) list() []Resync {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Resync, 0, len(j.byID))
	for _, r := range j.byID {
		out = append(out, clone(r))
	}
	sortNewestFirst(out)
	return out
}

// wait blocks until every resync has ended or ctx ends.
func (j *jobs) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clone copies a record deep enough that the copy can be encoded while the
// resync goes on (the caller holds j.mu).
func clone(r *Resync) Resync {
	c := *r
	c.Gateways = append([]ResyncGateway(nil), r.Gateways...)
	return c
}

func sortNewestFirst(rs []Resync) {
	slices.SortFunc(rs, func(a, b Resync) int { return b.Created.Compare(a.Created) })
}

// newID returns a random resync ID (12 hex digits).
func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// Resync scopes as metric labels.
const (
	scopeAll     = "all"
	scopeGateway = "gateway"
	scopeService = "service"
)

func scopeOf(gateway, service string) string {
	switch {
	case service != "":
		return scopeService
	case gateway != "":
		return scopeGateway
	default:
		return scopeAll
	}
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
