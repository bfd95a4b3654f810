package gateway

import (
	"context"
	"time"
)

// janitorLoop evicts idle services and expired negative answers. It runs
// every IdleTimeout/4 (between 100ms and 30s), so a service is forgotten
// at most a quarter of IdleTimeout late.
func (r *Resolver) janitorLoop(ctx context.Context) {
	t := time.NewTicker(min(max(r.opts.IdleTimeout/4, 100*time.Millisecond), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := r.opts.Now()
			r.evictIdle(now)
			r.m.negative.Set(float64(r.neg.sweep(now.UnixNano())))
		}
	}
}

// evictIdle forgets services not looked up for IdleTimeout.
func (r *Resolver) evictIdle(now time.Time) {
	cutoff := now.Add(-r.opts.IdleTimeout).Unix()
	if n := r.held.removeIf(func(e *entry) bool { return e.lastAccess.Load() < cutoff }); n > 0 {
		r.evicted(evictIdle, n)
	}
}

// evictOldest makes room for one more service: it forgets the least
// recently used, a batch at a time (1/64 of MaxServices), so a resolver
// at its cap sorts its services once per batch, not once per new service.
func (r *Resolver) evictOldest() {
	r.evictMu.Lock()
	defer r.evictMu.Unlock()
	over := r.held.len() - r.opts.MaxServices + 1
	if over <= 0 {
		return
	}
	victims := r.held.oldest(max(over, r.opts.MaxServices/64))
	if n := r.held.removeIf(func(e *entry) bool { return victims[e] }); n > 0 {
		r.evicted(evictCapacity, n)
	}
}

func (r *Resolver) evicted(reason evictReason, n int) {
	r.m.evictions[reason].Add(float64(n))
	r.m.services.Set(float64(r.held.len()))
	r.dirty.Store(true)
	r.log.Debug("services evicted", "reason", evictReasonNames[reason], "count", n, "held", r.held.len())
}
