package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// Loop states, as Status reports them.
const (
	// StateConnecting: the loop holds no current list and is asking for
	// one with a plain read (at start, after an error, after a reset).
	StateConnecting = "connecting"
	// StateWatching: the loop holds a current list and waits in a blocking
	// read for the next change.
	StateWatching = "watching"
	// StateBackoff: the last request failed; the loop waits before trying
	// again.
	StateBackoff = "backoff"
)

// loop keeps one list of one datacenter current and reports its changes.
//
// Index rules (Consul's blocking-query guidance):
//   - a request either is a plain read (no index) or blocks on the index
//     of the list held, which is at least 1: an index of 0 would turn it
//     into a plain read and spin;
//   - after an error the next request is a plain read: a restarted server
//     with a lower index would otherwise hold a blocking read on the old
//     index for the whole wait before answering;
//   - an answer whose index is lower than the list held (a restart, a
//     snapshot restore) resets: its content is diffed, a Resync is sent,
//     and the next request is a plain read;
//   - every wake-up's content is diffed: an index that moved proves
//     nothing.
type loop struct {
	dc     string
	name   string
	list   lister
	lim    *rate.Limiter
	opts   *Options
	queue  *queue
	m      *metrics
	log    hclog.Logger
	status loopState
	// warnedFiltered: the partial-list warning was logged once already.
	warnedFiltered bool
}

func newLoop(d *Detector, dc, name string, l lister) *loop {
	lp := &loop{
		dc: dc, name: name, list: l,
		lim:  rate.NewLimiter(rate.Limit(d.opts.Rate), d.opts.Burst),
		opts: &d.opts, queue: d.queue, m: d.m,
		log: d.log.With("dc", dc, "loop", name),
	}
	lp.status.s = LoopStatus{DC: dc, Loop: name, State: StateConnecting}
	// Counters exist from the start, at zero, so rate() and increase()
	// see the first error (and dashboards show the series before it).
	for _, result := range []string{errOther, errTimeout} {
		d.m.errors.WithLabelValues(dc, name, result)
	}
	return lp
}

// run keeps the list current until ctx ends.
func (l *loop) run(ctx context.Context) {
	defer l.m.watching.WithLabelValues(l.dc, l.name).Set(0)
	var (
		last     uint64 // index of the list held; 0: none
		plain    = true // the next request is a plain read
		resync   = true // send a Resync with the next successful answer
		failures int
	)
	for {
		if l.lim.Wait(ctx) != nil {
			return
		}
		q := Query{DC: l.dc, Wait: l.opts.Wait}
		if !plain {
			q.Index = max(last, 1)
		}
		l.setState(stateFor(plain))
		a, err := l.request(ctx, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			plain, resync = true, true
			l.failed(err, failures, a.timedOut)
			if !sleep(ctx, backoff(l.opts.BackoffMin, l.opts.BackoffMax, failures)) {
				return
			}
			continue
		}
		if failures > 0 {
			l.log.Info("list readable again", "failures", failures)
			failures = 0
		}
		reset := last > 0 && a.meta.Index < last
		if reset {
			l.log.Warn("index went backwards: the server restarted or restored a snapshot", "held", last, "got", a.meta.Index)
			resync = true
		}
		l.answered(q, a, reset)
		if len(a.changed) > 0 || resync {
			l.queue.add(l.dc, a.changed, resync, l.opts.Now())
		}
		resync, plain = false, reset
		last = max(a.meta.Index, 1)
		if p, ok := l.list.(pacer); ok && !sleep(ctx, p.pause()) {
			return
		}
	}
}

// pacer is a lister whose answers are costly enough to space out beyond
// the token bucket.
type pacer interface {
	// pause returns how long to wait before the next request.
	pause() time.Duration
}

// answer is the outcome of one request.
type answer struct {
	changed  []string
	meta     Meta
	timedOut bool // the request's own deadline passed
}

// request sends one list request under its deadline.
func (l *loop) request(ctx context.Context, q Query) (answer, error) {
	timeout := l.opts.requestTimeout(q.Index > 0)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var a answer
	var err error
	a.changed, a.meta, err = l.list.update(rctx, q)
	l.m.wireBytes.WithLabelValues(l.dc, l.name).Add(float64(a.meta.WireBytes))
	l.m.decodedBytes.WithLabelValues(l.dc, l.name).Add(float64(a.meta.DecodedBytes))
	if err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		a.timedOut = true
		err = fmt.Errorf("no answer within %s: %w", timeout, err)
	}
	return a, err
}

// answered records a successful answer in metrics and status.
func (l *loop) answered(q Query, a answer, reset bool) {
	m, changed := a.meta, a.changed
	result := wakeUnchanged
	switch {
	case reset:
		result = wakeReset
	case len(changed) > 0:
		result = wakeChanged
	case q.Index == 0:
		result = wakeInitial
	case m.Index == q.Index:
		result = wakeIdle
	}
	l.m.wakeups.WithLabelValues(l.dc, l.name, result).Inc()
	l.m.changes.WithLabelValues(l.dc, l.name).Add(float64(len(changed)))
	l.m.lastBytes.WithLabelValues(l.dc, l.name).Set(float64(m.WireBytes))
	if m.Filtered && !l.warnedFiltered {
		l.warnedFiltered = true
		l.log.Warn("ACLs hide part of the list: changes to what the token cannot read are not detected; the token needs node and service read on everything")
	}
	now := l.opts.Now()
	l.status.update(func(s *LoopStatus) {
		s.LastWake, s.WakeUps, s.Changes = now, s.WakeUps+1, s.Changes+uint64(len(changed))
		s.Index, s.LastResponseBytes, s.LastDecodedBytes = max(m.Index, 1), m.WireBytes, m.DecodedBytes
		s.ConsecutiveFailures = 0
	})
}

// failed records a failed request.
func (l *loop) failed(err error, failures int, timedOut bool) {
	result := errOther
	if timedOut {
		result = errTimeout
	}
	l.m.errors.WithLabelValues(l.dc, l.name, result).Inc()
	if failures == 1 {
		l.log.Warn("list request failed; backing off", "error", err)
	} else {
		l.log.Debug("list request failed again", "failures", failures, "error", err)
	}
	now := l.opts.Now()
	l.status.update(func(s *LoopStatus) {
		s.State, s.LastError, s.LastErrorAt, s.ConsecutiveFailures = StateBackoff, err.Error(), now, failures
	})
	l.m.watching.WithLabelValues(l.dc, l.name).Set(0)
}

func (l *loop) setState(state string) {
	l.status.update(func(s *LoopStatus) { s.State = state })
	v := 0.0
	if state == StateWatching {
		v = 1
	}
	l.m.watching.WithLabelValues(l.dc, l.name).Set(v)
}

func stateFor(plain bool) string {
	if plain {
		return StateConnecting
	}
	return StateWatching
}

// backoff returns the wait before retry number failures (1, 2, ...):
// uniformly random below min·2^(failures-1), capped at max ("full
// jitter"), so loops that failed together do not retry together.
func backoff(minD, maxD time.Duration, failures int) time.Duration {
	d := maxD
	if failures < 32 {
		if c := minD << (failures - 1); c > 0 && c < maxD {
			d = c
		}
	}
	return rand.N(d) + 1
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loopState guards a loop's status.
type loopState struct {
	mu sync.Mutex
	s  LoopStatus
}

func (ls *loopState) update(f func(*LoopStatus)) {
	ls.mu.Lock()
	f(&ls.s)
	ls.mu.Unlock()
}

func (ls *loopState) get() LoopStatus {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.s
}
