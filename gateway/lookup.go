package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// ErrInvalidName is returned, without any network call, for a name no
// cluster could hold (see checkName).
var ErrInvalidName = errors.New("invalid service name")

// checkName refuses, without any network call, names that cannot be a
// service: empty, longer than MaxServiceNameLen, or with an empty, "." or
// ".." path segment (Consul's router cleans those, so such a service can
// never be read by name; mirror.Addressable).
func checkName(service string) error {
	switch {
	case service == "":
		return fmt.Errorf("resolve: %w: empty", ErrInvalidName)
	case len(service) > MaxServiceNameLen:
		return fmt.Errorf("resolve: %w: %d bytes, at most %d", ErrInvalidName, len(service), MaxServiceNameLen)
	case !mirror.Addressable(service):
		return fmt.Errorf("resolve %q: %w: an empty, \".\" or \"..\" path segment", service, ErrInvalidName)
	}
	return nil
}

// resolveSlow answers a service that is not held: a remembered negative
// answer, or a first lookup shared by every caller waiting for it.
func (r *Resolver) resolveSlow(ctx context.Context, service string) (Answer, error) {
	if err := checkName(service); err != nil {
		r.m.lookups[SourceNone][resultError].Inc()
		return Answer{Service: service}, err
	}
	if a := r.neg.get(service, r.opts.Now().UnixNano()); a != nil {
		return r.serve(nil, a), nil
	}
	ch := r.lookups.DoChan(service, func() (any, error) { return r.firstLookup(service) })
	select {
	case res := <-ch:
		a, _ := res.Val.(*Answer)
		if res.Err != nil || a == nil {
			r.m.lookups[SourceNone][resultError].Inc()
			if res.Err == nil {
				res.Err = fmt.Errorf("resolve %q: no answer", service)
			}
			return Answer{Service: service}, res.Err
		}
		if e := r.held.get(service); e != nil && e.answer.Load() == a {
			return r.serve(e, a), nil
		}
		return r.serve(nil, a), nil
	case <-ctx.Done():
		r.m.lookups[SourceNone][resultError].Inc()
		return Answer{Service: service}, fmt.Errorf("resolve %q: %w", service, ctx.Err())
	}
}

// firstLookup runs once per service however many callers wait on it. It
// uses the resolver's own context, not a caller's, so one caller giving up
// does not fail the others; every call in it has its own deadline.
func (r *Resolver) firstLookup(service string) (*Answer, error) {
	if e := r.held.get(service); e != nil {
		if a := e.answer.Load(); a != nil {
			return a, nil
		}
	}
	r.awaitStart()
	ctx := r.base
	rounds := r.watchRounds.Load()
	snap := r.snapshot[service]
	var a *Answer
	if st := r.local.Load(); st.covers(service) {
		insts, err := r.readLocal(ctx, service)
		if err == nil {
			a = r.afterLocal(ctx, service, snap, insts)
		} else {
			r.log.Debug("local lookup failed", "service", service, "error", err)
		}
	}
	if a == nil {
		var err error
		if a, err = r.afterPublic(ctx, service, snap); a == nil {
			return nil, fmt.Errorf("resolve %q: no cluster answered and no snapshot: %w", service, err)
		}
	}
	if len(a.Instances) == 0 {
		now := r.opts.Now().UnixNano()
		r.neg.put(service, a, now+int64(r.opts.NegativeTTL), now)
		return a, nil
	}
	e := r.install(service, a)
	if a.Source == SourceLocal && r.watchRounds.Load() != rounds {
		// The watch moved on while we read: a change to this service may
		// have passed before it was held. Read it once more.
		r.kick(e)
	}
	return a, nil
}

// awaitStart waits (at most LookupTimeout) for the watch's first round, so
// lookups right after start are answered from the mirror rather than sent
// to the public cluster. (Before Run starts, first lookups wait that long.)
func (r *Resolver) awaitStart() {
	select {
	case <-r.started:
		return
	default:
	}
	t := time.NewTimer(r.opts.LookupTimeout)
	defer t.Stop()
	select {
	case <-r.started:
	case <-t.C:
	case <-r.base.Done():
	}
}

// install holds a first answer with instances. A service held already
// keeps its entry. Past MaxServices the least recently used are evicted.
func (r *Resolver) install(service string, a *Answer) *entry {
	e := &entry{service: service}
	e.answer.Store(a)
	now := r.opts.Now()
	e.lastAccess.Store(now.Unix())
	if a.Source == SourcePublic {
		e.nextRefresh.Store(now.Add(jitter(r.opts.PublicPollInterval)).UnixNano())
	}
	if r.held.len() >= r.opts.MaxServices {
		r.evictOldest()
	}
	held, added := r.held.add(e)
	if added {
		r.dirty.Store(true)
		r.m.services.Set(float64(r.held.len()))
	}
	return held
}

// store replaces a held answer (a nil or identical one is ignored).
func (r *Resolver) store(e *entry, a *Answer) {
	old := e.answer.Load()
	if a == nil || a == old {
		return
	}
	e.answer.Store(a)
	r.changed(e, old, a)
}

// storeIf replaces a held answer only if it is still old: a refresh that
// raced a newer write drops its result.
func (r *Resolver) storeIf(e *entry, old, a *Answer) {
	if a == nil || a == old || !e.answer.CompareAndSwap(old, a) {
		return
	}
	r.changed(e, old, a)
}

func (r *Resolver) changed(e *entry, old, a *Answer) {
	r.dirty.Store(true)
	if old == nil || old.Source != a.Source || len(old.Instances) != len(a.Instances) {
		r.log.Debug("answer changed", "service", e.service, "source", a.Source.String(), "instances", len(a.Instances))
	}
}
