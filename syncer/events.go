package syncer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/gwsync/gwsync/syncer/watch"
)

// The event path: a detector (syncer/watch) watches every public DC and
// says which services changed there. For each change the dispatcher finds
// the (gateway, service) pairs whose answer may change, and each gateway's
// event worker reconciles just those services (targeted.go). Work is
// coalesced: while a gateway reconciles some services, new changes for it
// accumulate and are taken together in its next round, so a burst of
// changes to one service costs a few executions, not one per change. The
// executions themselves are shared between gateways on the same source DC
// (Shared, with minAt: an answer that started after the change).

// UsableCounter says how many usable instances a service has in a DC, as
// the detector last saw (known false: not seen).
type UsableCounter interface {
	Usable(dc, service string) (n int, known bool)
}

// events is the dispatcher's state.
type events struct {
	usable UsableCounter
	dcs    func() []string
	mu     sync.Mutex
	// baselined: DCs whose change feed delivered its first list (a Resync
	// event); ready closes once every DC has.
	baselined map[string]bool
	ready     chan struct{}
	// pending per gateway: service -> its change waiting.
	pending map[string]map[string]change
	wake    map[string]chan struct{}
}

func newEvents(gateways []string, d Detector) *events {
	e := &events{usable: d, dcs: d.DCs, pending: map[string]map[string]change{}, wake: map[string]chan struct{}{},
		baselined: map[string]bool{}, ready: make(chan struct{})}
	for _, g := range gateways {
		e.pending[g] = map[string]change{}
		e.wake[g] = make(chan struct{}, 1)
	}
	return e
}

// HandleEvent takes one detector event (the detector's sink).
func (c *Controller) HandleEvent(ev watch.Event) {
	if c.events == nil {
		return
	}
	c.metrics.EventsReceived.WithLabelValues(ev.DC).Inc()
	latest := ev.Latest // an answer newer than every change ev carries
	if latest.Before(ev.At) {
		latest = ev.At
	}
	if latest.IsZero() { // a detector that sets no times: seen now
		latest = c.now()
	}
	at := ev.At // latencies are measured from the earliest change
	if at.IsZero() {
		at = latest
	}
	if ev.Resync {
		c.events.baseline(ev.DC)
		c.shared.Answered(ev.DC)
	}
	for _, name := range c.order {
		g := c.gateways[name]
		if !c.isOwned(name) {
			continue
		}
		if ev.Resync {
			// Events may have been missed up to latest: a full reconcile
			// that reads only answers newer than it covers them; else one
			// that does runs now.
			if g.dependsOn(ev.DC) && !g.fullCovers(latest) {
				g.log.Info("public change feed resynchronised: full reconcile", "dc", ev.DC)
				g.requestFullAfter(latest)
			}
			continue
		}
		var affected []string
		for _, s := range ev.Services {
			if c.affects(g, ev.DC, s) {
				affected = append(affected, s)
			}
		}
		if len(affected) > 0 {
			c.events.add(name, affected, change{at: at, minAt: latest}, c.metrics)
		}
	}
}

// baseline records that dc's feed has its first list.
func (e *events) baseline(dc string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.baselined[dc] = true
	dcs := e.dcs()
	for _, d := range dcs {
		if !e.baselined[d] {
			return
		}
	}
	if len(dcs) > 0 {
		select {
		case <-e.ready:
		default:
			close(e.ready)
		}
	}
}

// baselineWait bounds how long the first full reconciles wait for the
// change feed's first lists: starting them after the feed has its
// baseline means the feed's first Resync events need no second full
// reconcile; a public cluster the feed cannot reach must not delay them
// much.
const baselineWait = 5 * time.Second

// waitBaseline waits for every DC's first list, at most baselineWait.
func (c *Controller) waitBaseline(ctx context.Context) {
	if c.events == nil {
		return
	}
	t := time.NewTimer(baselineWait)
	defer t.Stop()
	select {
	case <-c.events.ready:
	case <-t.C:
		c.log.Warn("public change feed has no first list yet: starting the full reconciles without it", "waited", baselineWait)
	case <-ctx.Done():
	}
}

func (e *events) add(gateway string, services []string, c change, m *Metrics) {
	e.mu.Lock()
	p := e.pending[gateway]
	for _, s := range services {
		if merge(p, s, c) {
			m.EventsCoalesced.WithLabelValues(gateway).Inc()
		}
	}
	e.mu.Unlock()
	e.wakeUp(gateway)
}

// change is a service's change waiting for an event round: when it was
// first seen (the latency is measured from it) and the oldest start an
// answer may have (a retry after a failed read asks for a newer one than
// the failed read, which the share window would otherwise serve again).
type change struct {
	at, minAt time.Time
}

// merge records c for service in p, keeping the earliest change and the
// latest minAt; true if service was pending already.
func merge(p map[string]change, service string, c change) bool {
	old, ok := p[service]
	if ok {
		if old.at.Before(c.at) {
			c.at = old.at
		}
		if old.minAt.After(c.minAt) {
			c.minAt = old.minAt
		}
	}
	p[service] = c
	return ok
}

func (e *events) wakeUp(gateway string) {
	select {
	case e.wake[gateway] <- struct{}{}:
	default:
	}
}

// requeue puts back services taken but not reconciled, keeping the
// earliest change time of each, and wakes the gateway's worker.
func (e *events) requeue(gateway string, services map[string]change) {
	e.mu.Lock()
	p := e.pending[gateway]
	for s, c := range services {
		merge(p, s, c)
	}
	e.mu.Unlock()
	e.wakeUp(gateway)
}

// waitModel waits until the gateway's model is loaded: event rounds plan
// against it, and until a full reconcile has loaded it (a new owner, a
// model invalidated by a conflict) changes wait for it rather than fail;
// they are reconciled right after, with answers newer than the change
// (the full reconcile may have read these services before it). It asks
// for a full reconcile when none is running. False: ctx ended.
func (c *Controller) waitModel(ctx context.Context, g *gatewaySyncer) bool {
	loaded := g.modelLoaded()
	select {
	case <-loaded:
		return true
	default:
	}
	if len(g.runMu) == 0 {
		g.requestFull()
	}
	select {
	case <-ctx.Done():
		return false
	case <-loaded:
		return true
	}
}

// take returns and clears a gateway's pending services.
func (e *events) take(gateway string) map[string]change {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending[gateway]
	e.pending[gateway] = map[string]change{}
	return p
}

// affects reports whether a change to service in dc may change g's answer.
// The query runs in g's source DC and fails over only when that DC has no
// usable instance: a change elsewhere matters only when the last answer
// came from another DC, or the source DC has no usable instance (any more),
// or we do not know. A change in the source DC always matters.
func (c *Controller) affects(g *gatewaySyncer, dc, service string) bool {
	if !g.services.Selects(service, nil) && len(g.services.Tags) == 0 {
		return false
	}
	src := g.cfg.SourceDatacenter
	if dc == src {
		return true
	}
	if answered, ok := c.shared.AnsweredBy(src, service); ok && answered == src {
		if n, known := c.events.usable.Usable(src, service); known && n > 0 {
			return false
		}
	}
	return g.dependsOn(dc)
}

// dependsOn reports whether g's answers may come from dc: its source DC,
// or a DC its query can fail over to (nearest_n means any DC may be near).
func (g *gatewaySyncer) dependsOn(dc string) bool {
	return dc == g.cfg.SourceDatacenter || g.failoverAny || slices.Contains(g.failoverDCs, dc)
}

// eventLoop is a gateway's event worker: it reconciles the services its
// events named, a round at a time.
func (c *Controller) eventLoop(ctx context.Context, g *gatewaySyncer) {
	retry := &eventRetry{events: c.events, gateway: g.cfg.Name, min: c.cfg.Retry.MinBackoff, max: c.cfg.Retry.MaxBackoff}
	defer retry.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.events.wake[g.cfg.Name]:
		}
		if !c.waitModel(ctx, g) {
			return
		}
		pending := c.events.take(g.cfg.Name)
		if len(pending) == 0 || !c.isOwned(g.cfg.Name) {
			continue
		}
		names := slices.Sorted(maps.Keys(pending))
		var minAt time.Time
		for _, ch := range pending {
			if ch.minAt.After(minAt) {
				minAt = ch.minAt
			}
		}
		c.metrics.EventServices.WithLabelValues(g.cfg.Name).Add(float64(len(names)))
		lctx, cancel := c.leaseCtx(ctx, g)
		res, err := c.safeEvent(lctx, g, Request{Gateway: g.cfg.Name, Services: names, minAt: minAt})
		lost := lctx.Err() != nil // before cancel: the lease ended
		cancel()
		if ctx.Err() != nil {
			return
		}
		if lost {
			// The new owner's first full reconcile reads only answers
			// newer than its lease: it covers these changes.
			g.log.Debug("event-driven reconcile stopped: the lease ended", "services", len(names))
			continue
		}
		if errors.Is(err, errNotLoaded) {
			// The model was invalidated meanwhile (a conflict, a fence):
			// the changes wait for the full reconcile that reloads it.
			g.log.Debug("event-driven reconcile waits for the mirror to be reloaded", "services", len(names))
			c.events.requeue(g.cfg.Name, pending)
			continue
		}
		if err != nil {
			g.log.Warn("event-driven reconcile failed; a full reconcile follows", "services", len(names), "error", err)
			g.requestFullAfter(minAt)
			continue
		}
		now := c.now()
		retry.after(res.unread, pending, now)
		unread := make(map[string]bool, len(res.unread))
		for _, name := range res.unread {
			unread[name] = true
		}
		for name, ch := range pending {
			if !unread[name] {
				c.metrics.EventLatency.WithLabelValues(g.cfg.Name).Observe(now.Sub(ch.at).Seconds())
			}
		}
		logCycle(g.log, res, nil)
	}
}

func (c *Controller) safeEvent(ctx context.Context, g *gatewaySyncer, req Request) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.metrics.Panics.Inc()
			g.log.Error("event reconcile panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("event reconcile panicked: %v", p)
		}
	}()
	return g.sync(ctx, req)
}

// eventRetry puts back, after a backoff, the services of an event round
// whose source read failed (a DC timing out or backing off): their change
// is not applied yet, and the next full reconcile may be minutes away (its
// own retries back off too). Consecutive failing rounds back off
// exponentially with jitter, from retry.min_backoff to max_backoff; a
// round that reads everything resets it. A retry asks for an answer newer
// than the failed read (else the share window serves its error again) and
// keeps the change's time for the latency. One timer at a time: services
// failing while it runs join its batch. It counts real time (a timer), as
// the schedule's retries do.
type eventRetry struct {
	events   *events
	gateway  string
	min, max time.Duration
	failures int

	mu    sync.Mutex
	due   map[string]change
	timer *time.Timer
}

// minEventRetry keeps a zero retry.min_backoff from spinning the worker.
const minEventRetry = 10 * time.Millisecond

// after takes a round's outcome: unread, the services whose read failed
// (of pending, what the round took), now the time after the round.
func (r *eventRetry) after(unread []string, pending map[string]change, now time.Time) {
	if len(unread) == 0 {
		r.failures = 0
		return
	}
	r.failures++
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.due == nil {
		r.due = map[string]change{}
	}
	for _, name := range unread {
		merge(r.due, name, change{at: pending[name].at, minAt: now})
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(max(backoff(r.min, r.max, r.failures), minEventRetry), r.fire)
	}
}

func (r *eventRetry) fire() {
	r.mu.Lock()
	due := r.due
	r.due, r.timer = nil, nil
	r.mu.Unlock()
	r.events.requeue(r.gateway, due)
}

func (r *eventRetry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer != nil {
		r.timer.Stop()
	}
}
