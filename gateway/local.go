package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// view is what the watch last learned from the local cluster's records.
type view struct {
	known   bool   // the watch has read the records at least once
	problem string // why the records do not make the mirror usable
	freshAt time.Time
	cov     *coverage // nil until known
}

// localState says whether the local cluster answers lookups: its records
// are known, current and fresh, and its breaker is not open. It is
// replaced, never modified; its context ends when it is replaced, so a
// watch in flight on a cluster that just became unusable is cut short.
type localState struct {
	usable bool
	reason string
	open   bool      // the local breaker is open
	cov    *coverage // the mirror's coverage, nil when not usable
	ctx    context.Context
	cancel context.CancelFunc
}

// covers reports whether the usable mirror is authoritative for service.
func (s *localState) covers(service string) bool { return s.usable && s.cov.has(service) }

// setView records what the watch read and re-evaluates the state. A
// timer re-evaluates it again when the marker is due to go stale, so
// staleness is noticed on time without reading anything.
func (r *Resolver) setView(v view) {
	r.stateMu.Lock()
	r.view = v
	if r.staleTimer != nil {
		r.staleTimer.Stop()
		r.staleTimer = nil
	}
	if v.known && v.problem == "" {
		if d := v.freshAt.Add(r.opts.MaxMarkerAge).Sub(r.opts.Now()); d > 0 {
			r.staleTimer = time.AfterFunc(d+time.Millisecond, r.updateLocal)
		}
	}
	r.stateMu.Unlock()
	r.updateLocal()
}

// updateLocal recomputes the local state. It runs from the breaker's
// OnStateChange, under the breaker's lock, so it must never call into a
// breaker.
func (r *Resolver) updateLocal() {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	v := r.view
	open := gobreaker.State(r.localBrState.Load()) == gobreaker.StateOpen
	usable, reason := true, "synced"
	switch {
	case open:
		usable, reason = false, "circuit breaker open"
	case !v.known:
		usable, reason = false, "sync marker not read yet"
	case v.problem != "":
		usable, reason = false, v.problem
	case r.opts.Now().Sub(v.freshAt) > r.opts.MaxMarkerAge:
		usable, reason = false, fmt.Sprintf("sync marker older than %s", r.opts.MaxMarkerAge)
	}
	cov := v.cov
	if !usable {
		cov = nil
	}
	cur := r.local.Load()
	if cur.usable == usable && cur.reason == reason && cur.open == open && cur.cov == cov {
		return
	}
	next := &localState{usable: usable, reason: reason, open: open, cov: cov}
	next.ctx, next.cancel = context.WithCancel(r.base)
	r.local.Store(next)
	cur.cancel()
	switch {
	case usable && !cur.usable:
		r.log.Info("local cluster usable for resolving", "covered", cov.len())
	case !usable && (cur.usable || cur.reason != reason):
		r.log.Warn("local cluster not usable for resolving; falling back to the public cluster", "reason", reason)
	}
}

// confirm records that the local cluster just vouched for the held local
// answers (a watch round or a probe succeeded while it is usable): their
// age counts from now.
func (r *Resolver) confirm() {
	if r.local.Load().usable {
		r.confirmedAt.Store(r.opts.Now().UnixNano())
	}
}
