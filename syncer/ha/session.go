package ha

import (
	"context"
	"time"

	"github.com/hashicorp/consul/api"
)

// maxMemberGC bounds how many stale membership keys one renew round
// deletes.
const maxMemberGC = 16

// sessionLoop keeps this replica's session in g's cluster: it creates one,
// renews it every TTL/2, retries a failed renew with backoff, stops
// trusting it (ending the lease) once no renew succeeded for a TTL, and
// replaces it when Consul says it is gone. A session we stopped trusting
// but Consul still has (a short outage) is taken up again: the lock it
// holds is still ours.
func (c *Coordinator) sessionLoop(ctx context.Context, g *gwState) {
	ttl := c.opts.SessionTTL
	var lastOK time.Time // start of the last successful create or renew
	failures := 0
	for {
		c.mu.Lock()
		id, ok := g.session, g.sessionOK
		c.mu.Unlock()
		if ok && c.now().Sub(lastOK) >= ttl {
			c.sessionSuspect(g)
		}
		next := ttl / 2
		start := c.now()
		switch {
		case id == "":
			newID, err := c.createSession(ctx, g)
			if err != nil {
				failures++
				next = backoff(retryMin, retryMax, failures)
				logRetry(ctx, g, failures, "create session failed", err)
				break
			}
			failures, lastOK = 0, start
			c.setSession(g, newID)
			c.ensureMember(ctx, g)
		default:
			entry, err := c.renew(ctx, g, id)
			switch {
			case err != nil:
				failures++
				c.m.renewFailures.WithLabelValues(g.Name).Inc()
				logRetry(ctx, g, failures, "renew session failed", err)
				// While the session is trusted, retry well within the TTL and
				// look again at the moment we must stop trusting it; after
				// that, back off further: the cluster is out of reach.
				next = backoff(retryMin, retryMax, failures)
				if left := lastOK.Add(ttl).Sub(c.now()); left > 0 {
					next = min(backoff(retryMin, ttl/8, failures), left)
				}
			case entry == nil:
				g.log.Warn("session is gone (expired or destroyed)", "session", id)
				c.sessionGone(g)
				next = 0
			default:
				if failures > 0 || !ok {
					g.log.Info("session renewed again", "session", id)
				}
				failures, lastOK = 0, start
				c.sessionRenewed(g)
				c.ensureMember(ctx, g)
				c.collectMembers(ctx, g)
			}
		}
		if !wait(ctx, next, g.renewNow) {
			return
		}
	}
}

func (c *Coordinator) createSession(ctx context.Context, g *gwState) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// TTL only (no node checks): the session does not depend on which
	// server answered or on any agent's health. A lock-delay of 0 is sent
	// as 1 ms: Consul reads an absent one as its default 15 s.
	id, _, err := g.Client.Session().CreateNoChecks(&api.SessionEntry{
		Name:      "gwsync " + c.opts.Replica,
		TTL:       c.opts.SessionTTL.String(),
		Behavior:  api.SessionBehaviorRelease,
		LockDelay: max(c.opts.LockDelay, time.Millisecond),
	}, writeOpts(cctx))
	return id, err
}

// renew renews session id; a nil entry (and nil error) means it is gone.
func (c *Coordinator) renew(ctx context.Context, g *gwState, id string) (*api.SessionEntry, error) {
	cctx, cancel := context.WithTimeout(ctx, renewTimeout(c.opts.SessionTTL))
	defer cancel()
	entry, _, err := g.Client.Session().Renew(id, writeOpts(cctx))
	return entry, err
}

// setSession installs a new session: what we knew of the lock belongs to
// the old one, so it is read again before anything is decided.
func (c *Coordinator) setSession(g *gwState, id string) {
	c.mu.Lock()
	g.session, g.sessionOK = id, true
	g.lock, g.lockIndex, g.verify = lockView{}, 0, true
	c.syncLease(g)
	c.mu.Unlock()
	c.m.sessionUp.WithLabelValues(g.Name).Set(1)
	g.log.Info("session created", "session", id)
	poke(g.wake)
}

// sessionSuspect: no renew succeeded for a TTL. Consul keeps the session
// for up to another TTL, but we can no longer vouch for it: the lease ends
// (writes would be fenced anyway once it expires).
func (c *Coordinator) sessionSuspect(g *gwState) {
	c.mu.Lock()
	g.sessionOK = false
	c.syncLease(g)
	c.mu.Unlock()
	c.m.sessionUp.WithLabelValues(g.Name).Set(0)
	g.log.Warn("session not renewed within its TTL: no longer trusted")
	poke(g.wake)
}

// sessionGone: Consul no longer has the session; a new one is created.
func (c *Coordinator) sessionGone(g *gwState) {
	c.mu.Lock()
	g.session, g.sessionOK = "", false
	c.syncLease(g)
	c.mu.Unlock()
	c.m.sessionUp.WithLabelValues(g.Name).Set(0)
	poke(g.wake)
}

func (c *Coordinator) sessionRenewed(g *gwState) {
	c.mu.Lock()
	wasOK := g.sessionOK
	g.sessionOK = true
	if !wasOK {
		g.verify = true // the lock may have changed while we could not tell
	}
	c.mu.Unlock()
	c.m.sessionUp.WithLabelValues(g.Name).Set(1)
	if !wasOK {
		poke(g.wake)
	}
}

// ensureMember acquires our membership key in g's cluster unless the view
// shows our session holding it already (acquiring again would be a Raft
// write per renew).
func (c *Coordinator) ensureMember(ctx context.Context, g *gwState) {
	c.mu.Lock()
	session := g.session
	m, held := g.members[c.opts.Replica]
	c.mu.Unlock()
	if session == "" || (held && m.session == session) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ok, _, err := g.Client.KV().Acquire(&api.KVPair{Key: g.memberKey, Value: c.self().Encode(), Session: session}, writeOpts(cctx))
	switch {
	case err != nil:
		if ctx.Err() == nil {
			g.log.Warn("acquire membership key failed", "error", err)
		}
	case !ok && held:
		// Our replica ID is held by another session: our previous
		// incarnation (it expires within two TTLs) or, if it lasts,
		// another process configured with the same replica ID.
		g.log.Warn("membership key held by another session with our replica id; retrying", "address", m.holder.Address)
	}
}

// collectMembers deletes membership keys no session holds (replicas that
// died or were removed), check-and-set so a replica that comes back in the
// meantime keeps its key. Only the lowest replica of our group does it, so
// the replicas do not all write the same deletes.
func (c *Coordinator) collectMembers(ctx context.Context, g *gwState) {
	c.mu.Lock()
	stale := g.released
	lowest := c.opts.Replica == minOf(c.groupLocked())
	c.mu.Unlock()
	if !lowest || len(stale) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	for _, p := range stale[:min(len(stale), maxMemberGC)] {
		if _, _, err := g.Client.KV().DeleteCAS(p, writeOpts(cctx)); err != nil {
			g.log.Debug("delete stale membership key failed", "key", p.Key, "error", err)
			return
		}
	}
}

func minOf(xs []string) string {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

// logRetry logs a failing call of a retry loop: the first failure of a
// streak and every tenth as warnings, the rest at debug level, so a
// cluster out of reach for hours does not flood the log.
func logRetry(ctx context.Context, g *gwState, failures int, msg string, err error) {
	switch {
	case ctx.Err() != nil:
	case failures == 1 || failures%10 == 0:
		g.log.Warn(msg+"; retrying", "error", err, "failures", failures)
	default:
		g.log.Debug(msg+"; retrying", "error", err, "failures", failures)
	}
}
