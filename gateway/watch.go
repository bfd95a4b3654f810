package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
)

// watch keeps one service's answer fresh until the resolver stops. With a
// usable local cluster it runs blocking queries on the mirror; otherwise it
// polls the public cluster every PublicPollInterval, and switches back as
// soon as the local cluster becomes usable again.
func (r *Resolver) watch(e *entry, idx uint64) {
	defer r.wg.Done()
	ctx := r.base
	failures := 0
	for ctx.Err() == nil {
		st := r.local.Load()
		if !st.usable {
			idx = 0
			held := e.answer.Load()
			// An answer the public cluster gave moments ago (a first
			// lookup) is not fetched again before the poll interval.
			if held != nil && held.Source == SourcePublic {
				if wait := held.FetchedAt.Add(r.opts.PublicPollInterval).Sub(r.opts.Now()); wait > 0 {
					sleep(ctx, st.ctx, wait)
					continue
				}
			}
			if a, _ := r.afterPublic(ctx, e.service, held); a != nil && ctx.Err() == nil {
				r.store(e, a)
			}
			sleep(ctx, st.ctx, jitter(r.opts.PublicPollInterval))
			continue
		}
		held := e.answer.Load()
		wait := r.opts.BlockingWait
		if held != nil && held.Source != SourceLocal {
			// Serving public or remembered data while the mirror disagrees:
			// look again at least as often as the public fallback would.
			wait = min(wait, r.opts.PublicPollInterval)
		}
		insts, newIdx, err := r.watchLocal(st.ctx, e.service, idx, wait)
		if ctx.Err() != nil {
			return
		}
		if st.ctx.Err() != nil {
			continue // the local state changed mid-watch; re-evaluate
		}
		r.localBr.record(err)
		if err != nil {
			failures++
			r.store(e, asMemory(held))
			// The cluster may come back restarted, with lower indexes.
			idx = 0
			r.log.Debug("watch failed", "service", e.service, "error", err)
			sleep(ctx, st.ctx, backoff(r.opts.BackoffMin, r.opts.BackoffMax, failures))
			continue
		}
		if idx > 0 {
			// Only a blocking round proves the watch works: a cluster that
			// answers plain reads but fails blocking ones must keep backing off.
			failures = 0
		}
		idx = nextIndex(idx, newIdx)
		a := r.afterLocal(ctx, e.service, held, insts)
		if ctx.Err() == nil && st.ctx.Err() == nil {
			r.store(e, a)
		}
	}
}

// watchLocal is one blocking query on the mirror. It deliberately bypasses
// the breaker (see breaker.record).
func (r *Resolver) watchLocal(ctx context.Context, service string, idx uint64, wait time.Duration) ([]Instance, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, watchDeadline(wait, r.opts.LookupTimeout))
	defer cancel()
	var entries []*api.ServiceEntry
	entries, meta, err := r.opts.Local.Health().Service(service, "", true, localQueryOptions(ctx, idx, wait))
	if err != nil {
		return nil, 0, fmt.Errorf("watch %s: %w", service, err)
	}
	return r.fromMirror(entries), meta.LastIndex, nil
}

// watchDeadline bounds a blocking query: the wait, Consul's jitter of up to
// wait/16, and the time a short call may take.
func watchDeadline(wait, call time.Duration) time.Duration {
	return wait + wait/16 + call
}

// nextIndex applies Consul's blocking-query rules: an index that went
// backwards (a restored or restarted cluster) restarts the watch from 0,
// and an index below 1 is treated as 1 so the next query still blocks.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got < 1:
		return 1
	default:
		return got
	}
}

// backoff is exponential from lo to hi, with jitter over its upper half so
// many watchers that failed together do not retry together.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// jitter spreads a period by ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/10 + rand.N(d/5+1)
}

// sleep waits d, or until ctx or (if non-nil) wake ends.
func sleep(ctx, wake context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	var wakeC <-chan struct{}
	if wake != nil {
		wakeC = wake.Done()
	}
	select {
	case <-ctx.Done():
	case <-wakeC:
	case <-t.C:
	}
}
