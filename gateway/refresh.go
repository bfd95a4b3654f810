package gateway

import (
	"context"
	"time"
)

// kick queues a background refresh of e, unless one is queued already or
// the queue is full (then a later lookup asks again). It does not block
// or allocate: it runs on the lookup path.
func (r *Resolver) kick(e *entry) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case r.refreshQ <- e:
	default:
		e.refreshing.Store(false)
	}
}

// refreshWorker refreshes queued entries until ctx ends. A fixed number of
// workers serve all held services: refresh work follows lookups, and the
// public cluster sees at most PublicRate calls a second from them.
func (r *Resolver) refreshWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.refreshQ:
			r.refresh(ctx, e)
			e.refreshing.Store(false)
		}
	}
}

// refresh reads e again from the mirror if it covers the service, else
// from the public cluster, and schedules the next refresh: a public answer
// is fetched again at most every PublicPollInterval, and a refresh that
// found no cluster backs off (up to the same interval) so a dead public
// cluster is not asked on every lookup.
func (r *Resolver) refresh(ctx context.Context, e *entry) {
	held := e.answer.Load()
	var (
		a   *Answer
		err error
	)
	if st := r.local.Load(); st.covers(e.service) {
		insts, lerr := r.readLocal(ctx, e.service)
		if lerr == nil {
			a = r.afterLocal(ctx, e.service, held, insts)
		}
		err = lerr
	}
	if a == nil {
		a, err = r.afterPublic(ctx, e.service, held)
	}
	if ctx.Err() != nil {
		return
	}
	r.storeIf(e, held, a)
	now := r.opts.Now()
	var wait time.Duration
	switch {
	case a != nil && a.Source == SourceLocal:
		// Kept fresh by the watch; due as soon as the mirror stops being
		// usable.
		e.failures = 0
		e.nextRefresh.Store(0)
		return
	case a == nil || a.Source == SourceMemory || a.Source == SourceSnapshot:
		e.failures++
		wait = backoff(r.opts.BackoffMin, r.opts.PublicPollInterval, e.failures)
		r.log.Debug("refresh found no cluster; serving last known good", "service", e.service, "error", err)
	default:
		e.failures = 0
		wait = jitter(r.opts.PublicPollInterval)
	}
	e.nextRefresh.Store(now.Add(wait).UnixNano())
}
