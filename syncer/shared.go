package syncer

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Shared lets every gateway on a source DC use one public read per
// (operation, DC, service) and share window: concurrent callers join the
// call in flight (single-flight), and later callers within the window reuse
// its result, errors included, so a failing DC is not hammered once per
// gateway. This is what keeps public load flat as gateways are added.
type Shared struct {
	src    *Source
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]sharedEntry
	sf    singleflight.Group
	dcs   map[string]*DCHealth
}

type sharedEntry struct {
	at  time.Time
	val any
	err error
}

// DCHealth is the recent health of reads from one public DC.
type DCHealth struct {
	Datacenter string    `json:"datacenter"`
	LastOK     time.Time `json:"last_ok"`
	LastError  string    `json:"last_error,omitempty"`
	LastErrAt  time.Time `json:"last_error_at"`
	Failures   int       `json:"consecutive_failures"`
}

// NewShared shares src's reads within window.
func NewShared(src *Source, window time.Duration, now func() time.Time) *Shared {
	return &Shared{src: src, window: window, now: now, cache: map[string]sharedEntry{}, dcs: map[string]*DCHealth{}}
}

// do returns a cached result younger than the window, or runs fn once for
// all concurrent callers of key. fresh skips the cache (forced resync).
func (s *Shared) do(ctx context.Context, key, dc string, fresh bool, fn func(context.Context) (any, error)) (any, error) {
	if !fresh {
		s.mu.Lock()
		e, ok := s.cache[key]
		s.mu.Unlock()
		if ok && s.now().Sub(e.at) <= s.window {
			return e.val, e.err
		}
	}
	// The shared call must not die with whichever caller started it: it
	// runs detached (Source.call bounds it with its own timeout), and each
	// caller waits only as long as its own context allows.
	ch := s.sf.DoChan(key, func() (any, error) {
		v, err := fn(context.WithoutCancel(ctx))
		s.mu.Lock()
		s.cache[key] = sharedEntry{at: s.now(), val: v, err: err}
		s.recordLocked(dc, err)
		s.mu.Unlock()
		return v, err
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Shared) recordLocked(dc string, err error) {
	if dc == "" {
		return
	}
	h, ok := s.dcs[dc]
	if !ok {
		h = &DCHealth{Datacenter: dc}
		s.dcs[dc] = h
	}
	if err == nil {
		h.LastOK, h.Failures = s.now(), 0
		return
	}
	h.LastError, h.LastErrAt = err.Error(), s.now()
	h.Failures++
}

// Health returns a copy of per-DC read health, sorted by DC.
func (s *Shared) Health() []DCHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DCHealth, 0, len(s.dcs))
	for _, dc := range sortedKeys(s.dcs) {
		out = append(out, *s.dcs[dc])
	}
	return out
}

// Prune drops cached results older than maxAge, so services that vanished
// do not pin memory.
func (s *Shared) Prune(maxAge time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, e := range s.cache {
		if now.Sub(e.at) > maxAge {
			delete(s.cache, k)
		}
	}
}

// Datacenters lists the federation's DCs.
func (s *Shared) Datacenters(ctx context.Context, fresh bool) ([]string, error) {
	v, err := s.do(ctx, "dcs", "", fresh, func(ctx context.Context) (any, error) { return s.src.Datacenters(ctx) })
	dcs, _ := v.([]string)
	return dcs, err
}

// Services lists dc's services with their tags.
func (s *Shared) Services(ctx context.Context, dc string, fresh bool) (map[string][]string, error) {
	v, err := s.do(ctx, "services|"+dc, dc, fresh, func(ctx context.Context) (any, error) { return s.src.Services(ctx, dc) })
	m, _ := v.(map[string][]string)
	return m, err
}

// Execute runs (or reuses) the prepared query for service in dc.
func (s *Shared) Execute(ctx context.Context, dc, service string, fresh bool) (Answer, error) {
	v, err := s.do(ctx, "execute|"+dc+"|"+service, dc, fresh, func(ctx context.Context) (any, error) {
		return s.src.Execute(ctx, dc, service)
	})
	a, _ := v.(Answer)
	return a, err
}

// PassingCount counts service's usable instances in dc (not shared: it only
// runs to confirm an empty answer before a delete, and must be fresh).
func (s *Shared) PassingCount(ctx context.Context, dc, service string) (int, error) {
	return s.src.PassingCount(ctx, dc, service)
}
