package syncer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Shared lets every gateway on a source DC use one public read per
// (operation, DC, service): concurrent callers join the call in flight
// (single-flight), and later callers reuse its result, errors included, as
// long as it is younger than the share window. A caller that needs an
// answer read after some time (minAt: an event-driven reconcile reacts to
// a change seen then) never takes one that started earlier, neither cached
// nor in flight. This is what keeps public load flat as
// gateways are added.
//
// It also keeps each DC's health: a DC whose calls keep failing is backed
// off (exponential, with jitter, bounded), so a DC that is down costs a few
// requests a minute, not one per service per cycle.
type Shared struct {
	pub     Public
	window  time.Duration
	backMin time.Duration
	backMax time.Duration
	now     func() time.Time
	onDC    func(dc string, up bool)

	mu       sync.Mutex
	cache    map[string]sharedEntry
	inflight map[string]flight // key -> the latest call in flight
	seq      uint64            // names flights
	sf       singleflight.Group
	dcs      map[string]*DCHealth
	answered map[string]string // "dc|service" -> DC that answered its last execution
	pruned   time.Time         // the cache's last prune
}

// flight is a call in flight: its single-flight name (each call its own)
// and when it was started.
type flight struct {
	name  string
	start time.Time
}

type sharedEntry struct {
	at  time.Time
	val any
	err error
}

// DCHealth is the recent health of reads from one public DC.
type DCHealth struct {
	Datacenter string
	LastOK     time.Time
	LastError  string
	LastErrAt  time.Time
	Failures   int
	// RetryAt is when calls to the DC resume after failures (zero: now).
	RetryAt time.Time
}

// ErrBackoff: calls to a DC are paused after consecutive failures.
var ErrBackoff = errors.New("backing off after consecutive failures")

// SharedOptions configure NewShared.
type SharedOptions struct {
	Window     time.Duration
	BackoffMin time.Duration
	BackoffMax time.Duration
	Now        func() time.Time
	// OnDC, if set, is told after each call whether the DC answered.
	OnDC func(dc string, up bool)
}

// NewShared shares pub's reads.
func NewShared(pub Public, o SharedOptions) *Shared {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Shared{pub: pub, window: o.Window, backMin: o.BackoffMin, backMax: max(o.BackoffMax, o.BackoffMin), now: o.Now, onDC: o.OnDC,
		cache: map[string]sharedEntry{}, inflight: map[string]flight{}, dcs: map[string]*DCHealth{}, answered: map[string]string{}}
}

// do returns a cached result started at or after minAt and younger than
// the window, or joins the latest call of key in flight if it started at or
// after minAt, or runs fn in a call of its own that later callers join.
func (s *Shared) do(ctx context.Context, key, dc string, minAt time.Time, fn func(context.Context) (any, error)) (any, error) {
	s.mu.Lock()
	now := s.now()
	if e, ok := s.cachedLocked(key, minAt, now); ok {
		s.mu.Unlock()
		return e.val, e.err
	}
	if h := s.dcs[dc]; dc != "" && h != nil && now.Before(h.RetryAt) {
		s.mu.Unlock()
		return nil, fmt.Errorf("public datacenter %s: %w (retry in %s)", dc, ErrBackoff, h.RetryAt.Sub(now).Round(time.Millisecond))
	}
	// A call in flight that started before minAt cannot have seen the
	// change the caller reacts to: it starts a call of its own, which
	// becomes the one later callers join. Each call has its own name, so
	// nobody can join an older call once a newer one is known.
	f, ok := s.inflight[key]
	if !ok || f.start.Before(minAt) {
		s.seq++
		f = flight{name: key + "#" + strconv.FormatUint(s.seq, 10), start: now}
		s.inflight[key] = f
	}
	s.mu.Unlock()
	// The shared call must not die with whichever caller started it: it
	// runs detached (Public bounds every call with its own deadline), and
	// each caller waits only as long as its own context allows.
	ch := s.sf.DoChan(f.name, func() (any, error) {
		s.mu.Lock()
		// The call this caller joined may have finished between the unlock
		// above and DoChan, which then starts f's name afresh: its answer
		// (or a newer one) is cached, and is not executed again.
		if e, ok := s.cachedLocked(key, f.start, s.now()); ok {
			s.mu.Unlock()
			return e.val, e.err
		}
		s.mu.Unlock()
		start := s.now()
		v, err := recovered(func() (any, error) { return fn(context.WithoutCancel(ctx)) })
		s.mu.Lock()
		if cur, ok := s.inflight[key]; ok && cur.name == f.name {
			delete(s.inflight, key)
		}
		if old, ok := s.cache[key]; !ok || !old.at.After(start) {
			s.cache[key] = sharedEntry{at: start, val: v, err: err}
		}
		if now := s.now(); now.Sub(s.pruned) > s.window {
			s.pruneLocked(now)
		}
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

// cachedLocked returns key's cached result if it started at or after
// minAt and is younger than the window at now. s.mu held.
func (s *Shared) cachedLocked(key string, minAt, now time.Time) (sharedEntry, bool) {
	e, ok := s.cache[key]
	return e, ok && !e.at.Before(minAt) && now.Sub(e.at) <= s.window
}

// recordLocked updates dc's health. Only failures of the DC itself count:
// a missing query or a denied token is an answer from a live DC.
func (s *Shared) recordLocked(dc string, err error) {
	if dc == "" {
		// The datacenter list is the agent's own answer: when the agent
		// gwsync talks to does not give it (a hung or dead agent), no DC
		// answers through it, and every cycle stops here, before any
		// per-DC read could say so.
		if err != nil && dcFailure(err) && s.onDC != nil {
			for known := range s.dcs {
				s.onDC(known, false)
			}
		}
		return
	}
	h, ok := s.dcs[dc]
	if !ok {
		h = &DCHealth{Datacenter: dc}
		s.dcs[dc] = h
	}
	now := s.now()
	if err == nil || !dcFailure(err) {
		h.LastOK, h.Failures, h.RetryAt = now, 0, time.Time{}
		if s.onDC != nil {
			s.onDC(dc, true)
		}
		return
	}
	h.LastError, h.LastErrAt = err.Error(), now
	h.Failures++
	if s.backMin > 0 {
		h.RetryAt = now.Add(backoff(s.backMin, s.backMax, h.Failures))
	}
	if s.onDC != nil {
		s.onDC(dc, false)
	}
}

// Answered records that dc answered another reader (the change feed's
// full list after a restart or an error): its backoff ends, so the full
// reconcile that list triggers reads it at once instead of failing fast.
func (s *Shared) Answered(dc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.dcs[dc]; ok && h.Failures > 0 {
		s.recordLocked(dc, nil)
	}
}

// dcFailure tells a failure of the DC (no answer, 5xx, 429) from an answer
// about the request (a 404 for a missing query, a 403).
func dcFailure(err error) bool {
	return !errors.Is(err, ErrQueryNotFound) && !isClientError(err)
}

// backoff is exponential from lo to hi with full jitter over its upper
// half, so callers that failed together do not retry together.
func backoff(lo, hi time.Duration, failures int) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// Health returns a copy of per-DC read health, sorted by DC.
func (s *Shared) Health() []DCHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DCHealth, 0, len(s.dcs))
	for _, dc := range slices.Sorted(maps.Keys(s.dcs)) {
		out = append(out, *s.dcs[dc])
	}
	return out
}

// Prune drops cached results older than the share window (their only use),
// so a large catalog does not pin its answers in memory between cycles.
func (s *Shared) Prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(s.now())
}

// pruneLocked is Prune with s.mu held. Calls also prune, at most once a
// window: a full reconcile reads every service, and its answers, kept
// until it ended, were a second copy of every gateway's desired mirror
// (issue 14).
func (s *Shared) pruneLocked(now time.Time) {
	s.pruned = now
	for k, e := range s.cache {
		if now.Sub(e.at) > s.window {
			delete(s.cache, k)
		}
	}
}

// Datacenters lists the federation's DCs.
func (s *Shared) Datacenters(ctx context.Context, minAt time.Time) ([]string, error) {
	v, err := s.do(ctx, "dcs", "", minAt, func(ctx context.Context) (any, error) { return s.pub.Datacenters(ctx) })
	dcs, _ := v.([]string)
	return dcs, err
}

// Catalog lists dc's services with their tags.
func (s *Shared) Catalog(ctx context.Context, dc string, minAt time.Time) (Catalog, error) {
	v, err := s.do(ctx, "catalog|"+dc, dc, minAt, func(ctx context.Context) (any, error) { return s.pub.Catalog(ctx, dc) })
	c, _ := v.(Catalog)
	return c, err
}

// Execute runs (or reuses) the prepared query for service in dc.
func (s *Shared) Execute(ctx context.Context, dc, service string, minAt time.Time) (Answer, error) {
	v, err := s.do(ctx, "execute|"+dc+"|"+service, dc, minAt, func(ctx context.Context) (any, error) {
		a, err := s.pub.Execute(ctx, dc, service)
		if err == nil {
			s.mu.Lock()
			if len(a.Endpoints) > 0 { // kept through empty answers: confirmations ask it too
				s.answered[dc+"|"+service] = a.Datacenter
			}
			s.mu.Unlock()
		}
		return a, err
	})
	a, _ := v.(Answer)
	return a, err
}

// AnsweredBy returns the DC whose instances answered the last execution of
// service's query from dc that had instances ("" and false: none yet).
func (s *Shared) AnsweredBy(dc, service string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.answered[dc+"|"+service]
	return d, ok
}

// Usable counts service's usable instances in dc (never shared: it only
// runs to confirm an empty answer before a delete, and must be fresh).
func (s *Shared) Usable(ctx context.Context, dc, service string) (int, Evidence, error) {
	n, ev, err := s.pub.Usable(ctx, dc, service)
	s.mu.Lock()
	s.recordLocked(dc, err)
	s.mu.Unlock()
	return n, ev, err
}

// recovered runs fn and turns a panic into an error. singleflight.DoChan
// re-panics a panicking function on a goroutine of its own, where nothing
// can recover it: every shared call runs through recovered.
func recovered[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn()
}
