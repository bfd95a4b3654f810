package ha

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// maxHandoverHold caps the doubling hold between handovers of a gateway
// that keeps coming back to us (its preferred owner cannot or will not
// take it): at most one handover attempt per 10 minutes then.
const maxHandoverHold = 10 * time.Minute

// decideLoop re-evaluates g whenever something it depends on changes (its
// lock, our session, the membership, a fence report) or a decision asked
// to look again at a given time.
func (c *Coordinator) decideLoop(ctx context.Context, g *gwState) {
	for {
		wakeAt := c.step(ctx, g)
		d := time.Hour // nothing scheduled: only events wake the loop
		if !wakeAt.IsZero() {
			d = wakeAt.Sub(c.now())
		}
		if !wait(ctx, d, g.wake) {
			return
		}
	}
}

// step brings g's lease in line with what we know, decides, and acts. It
// returns when to look again (zero: on the next event).
func (c *Coordinator) step(ctx context.Context, g *gwState) time.Time {
	c.mu.Lock()
	verify := g.verify && g.session != ""
	c.mu.Unlock()
	if verify {
		if !c.readLock(ctx, g) {
			g.readFailures++
			return c.now().Add(backoff(retryMin, retryMax, g.readFailures))
		}
		g.readFailures = 0
	}
	c.mu.Lock()
	c.syncLease(g)
	in := c.input(g)
	d := decide(in)
	c.mu.Unlock()
	switch d.act {
	case actAcquire:
		c.acquire(ctx, g, in.session)
		return c.now()
	case actRelease:
		c.handOver(ctx, g, in.preferred)
		return c.now()
	}
	return d.wakeAt
}

// syncLease starts or ends g's lease to match the lock and our session.
// Called with c.mu held.
func (c *Coordinator) syncLease(g *gwState) {
	if l := g.lease; l != nil {
		switch {
		case !g.sessionOK || g.session != l.Session:
			c.endLease(g, ErrSessionLost)
		case g.lock.known && g.lock.session != l.Session:
			c.endLease(g, ErrLockLost)
		}
	}
	if g.lease == nil && g.sessionOK && !g.verify && g.lock.known && g.lock.session == g.session {
		since := c.now()
		g.lease = newLease(g.Name, g.session, g.lockKey, since)
		c.transition(g, eventAcquired)
		g.log.Info("own the gateway", "session", g.session)
	}
}

// input gathers decide's input for g. Called with c.mu held.
func (c *Coordinator) input(g *gwState) decideInput {
	self := c.opts.Replica
	group := c.groupLocked()
	owner := Assign(c.opts.Gateways, group)
	in := decideInput{
		now:       c.now(),
		self:      self,
		lock:      g.lock,
		preferred: owner[g.Name],
		lockDelay: c.opts.LockDelay,
		settle:    c.opts.HandoverSettle,
		holdUntil: g.holdUntil,
		retryAt:   g.retryAt,
	}
	if g.sessionOK && !g.verify {
		in.session = g.session
	}
	if m, ok := g.members[in.preferred]; ok && in.preferred != self && m.holder.ConfigHash == c.opts.ConfigHash {
		in.preferredSince = m.since
	}
	candidates := []string{self}
	for r, m := range g.members {
		if m.holder.ConfigHash == c.opts.ConfigHash {
			candidates = append(candidates, r)
		}
	}
	in.rank = slices.Index(fallbackOrder(g.Gateway, owner, c.dcOf, candidates), self)
	return in
}

// groupLocked returns the live replicas that share our configuration, this
// one included: the replicas the assignment spreads gateways over.
func (c *Coordinator) groupLocked() []string {
	group := []string{c.opts.Replica}
	for r, m := range c.members {
		if m.ConfigMatch {
			group = append(group, r)
		}
	}
	return group
}

// acquire tries to lock g's key with session. Success is not trusted until
// a direct read confirms it (verify), so a stale watch result cannot undo
// it; failure (lock-delay, a race, an error) schedules the next try.
func (c *Coordinator) acquire(ctx context.Context, g *gwState, session string) {
	h := c.self()
	h.Since = c.now()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	ok, _, err := g.Client.KV().Acquire(&api.KVPair{Key: g.lockKey, Value: h.Encode(), Session: session}, writeOpts(cctx))
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && ok {
		g.failures, g.retryAt, g.verify = 0, time.Time{}, true
		return
	}
	g.failures++
	if err != nil {
		logRetry(ctx, g, g.failures, "acquire lock failed", err)
	}
	now := c.now()
	g.retryAt = now.Add(backoff(retryMin, retryMax, g.failures))
	if g.failures == 1 && err == nil {
		// Most likely the lock-delay of a session that just died: it ends
		// LockDelay after the lock was freed (if the dead holder used our
		// configuration), so try again right then.
		end := g.lock.freeSince.Add(c.opts.LockDelay + 50*time.Millisecond)
		g.retryAt = laterOf(now.Add(50*time.Millisecond), end)
	}
}

// handOver ends our lease on g and releases its lock for the preferred
// owner to, doubling the hold before our next handover of g in case it
// comes back to us.
func (c *Coordinator) handOver(ctx context.Context, g *gwState, to string) {
	c.mu.Lock()
	c.endLease(g, ErrHandedOver)
	session, value := g.session, g.lockValue
	g.handoverTo = to
	hold := min(c.opts.HandoverSettle<<min(g.handovers+1, 20), maxHandoverHold)
	g.holdUntil = c.now().Add(hold)
	g.handovers++
	g.verify = true
	c.mu.Unlock()
	g.log.Info("handing the gateway to its preferred owner", "to", to)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, _, err := g.Client.KV().Release(&api.KVPair{Key: g.lockKey, Session: session, Value: value}, writeOpts(cctx)); err != nil {
		g.log.Warn("release lock for handover failed", "error", err)
	}
}

// readLock reads g's lock directly (consistent) and applies it; it
// reports whether the read succeeded. verify is cleared before the read, so
// a request for verification made while it runs (a fence report) is kept
// for the next step.
func (c *Coordinator) readLock(ctx context.Context, g *gwState) bool {
	c.mu.Lock()
	g.verify = false
	c.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	pair, meta, err := g.Client.KV().Get(g.lockKey, (&api.QueryOptions{RequireConsistent: true}).WithContext(cctx))
	if err != nil {
		c.mu.Lock()
		g.verify = true
		c.mu.Unlock()
		logRetry(ctx, g, g.readFailures+1, "read lock failed", err)
		return false
	}
	c.observeLock(g, pair, meta.LastIndex, false)
	return true
}

// observeLock applies a read of g's lock, from the watch or a direct read,
// unless it is older than what was applied: reads race (a direct read sent
// before an acquire can answer after the watch saw it), and Consul's index
// for a single key orders its states (the key's ModifyIndex while it
// exists, the KV table's index while it does not, which is past its
// deletion). A watch whose index went backwards (reset: the cluster lost
// its data) starts the order again.
func (c *Coordinator) observeLock(g *gwState, pair *api.KVPair, index uint64, reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !reset && index < g.lockIndex {
		return
	}
	g.lockIndex = index
	prev := g.lock
	session, value := "", []byte(nil)
	if pair != nil {
		session, value = pair.Session, pair.Value
	}
	g.lock.known, g.lock.session = true, session
	switch {
	case session != "":
		g.lock.freeSince = time.Time{}
	case !prev.known || prev.session != "" || prev.freeSince.IsZero():
		g.lock.freeSince = c.now()
	}
	if prev.session != session || !prev.known {
		g.log.Debug("lock holder changed", "session", session, "index", index)
		g.failures, g.retryAt = 0, time.Time{}
		c.notifyLocked()
	}
	g.lockValue = value
	g.holder, g.holderOK = mirror.Holder{}, false
	if session != "" {
		h, err := mirror.DecodeHolder(value)
		g.holder, g.holderOK = h, err == nil
		if g.holderOK && h.Replica == g.handoverTo && h.Replica != c.opts.Replica {
			g.handovers, g.handoverTo = 0, "" // the handover worked
		}
	}
	c.syncLease(g)
	poke(g.wake)
}
