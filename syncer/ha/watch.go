package ha

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// mismatchLogEvery rate-limits the warning about a replica running another
// configuration: once when it appears, then at most this often.
const mismatchLogEvery = 10 * time.Minute

// blockingWatch runs fetch as a blocking query loop: fetch gets the index to
// wait on and returns the index it saw. Consul's rules apply: an index that
// went backwards (a restarted cluster) restarts from 0, below 1 counts as 1;
// errors back off with jitter.
func blockingWatch(ctx context.Context, g *gwState, what string, fetch func(ctx context.Context, index uint64) (uint64, error)) {
	var index uint64
	failures := 0
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, watchWait+watchWait/16+callTimeout)
		got, err := fetch(cctx, index)
		cancel()
		if err != nil {
			failures++
			if ctx.Err() == nil && failures == 1 {
				g.log.Warn("watch failed; retrying", "watch", what, "error", err)
			}
			if !wait(ctx, backoff(retryMin, retryMax, failures), nil) {
				return
			}
			continue
		}
		if failures > 0 {
			g.log.Info("watch recovered", "watch", what)
		}
		failures = 0
		switch {
		case got < index:
			index = 0
		case got < 1:
			index = 1
		default:
			index = got
		}
	}
}

func blockingOpts(ctx context.Context, index uint64) *api.QueryOptions {
	return (&api.QueryOptions{WaitIndex: index, WaitTime: watchWait}).WithContext(ctx)
}

// watchLock follows g's lock key.
func (c *Coordinator) watchLock(ctx context.Context, g *gwState) {
	blockingWatch(ctx, g, "lock", func(ctx context.Context, index uint64) (uint64, error) {
		pair, meta, err := g.Client.KV().Get(g.lockKey, blockingOpts(ctx, index))
		if err != nil {
			return 0, err
		}
		c.observeLock(g, pair, meta.LastIndex, meta.LastIndex < index)
		return meta.LastIndex, nil
	})
}

// watchMembers follows the membership keys in g's cluster.
func (c *Coordinator) watchMembers(ctx context.Context, g *gwState) {
	prefix := mirror.ReplicasPrefix(c.opts.KVPrefix)
	blockingWatch(ctx, g, "members", func(ctx context.Context, index uint64) (uint64, error) {
		pairs, meta, err := g.Client.KV().List(prefix, blockingOpts(ctx, index))
		if err != nil {
			return 0, err
		}
		c.observeMembers(g, prefix, pairs)
		return meta.LastIndex, nil
	})
}

// observeMembers applies a read of g's membership keys and recomputes the
// union over all clusters.
func (c *Coordinator) observeMembers(g *gwState, prefix string, pairs api.KVPairs) {
	now := c.now()
	seen := map[string]memberSeen{}
	var released []*api.KVPair
	for _, p := range pairs {
		name := strings.TrimPrefix(p.Key, prefix)
		if p.Session == "" {
			released = append(released, p)
			continue
		}
		h, err := mirror.DecodeHolder(p.Value)
		if err != nil || h.Replica != name {
			g.log.Warn("ignoring a malformed membership key", "key", p.Key)
			continue
		}
		since := now
		if old, ok := g.members[name]; ok && old.session == p.Session {
			since = old.since
		}
		seen[name] = memberSeen{holder: h, session: p.Session, since: since}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g.members, g.released, g.loaded = seen, released, true
	c.unionLocked(now)
	poke(g.wake) // a member's settle time may have restarted
	if m, ok := seen[c.opts.Replica]; g.sessionOK && (!ok || m.session != g.session) {
		// Our key is not ours (yet): when it was just released (our
		// previous incarnation's session expired), take it now rather
		// than at the next renew. A failed acquire changes nothing, so
		// this cannot loop.
		poke(g.renewNow)
	}
}

// unionLocked recomputes the members seen across every cluster; on a change
// it logs, updates the metrics and wakes every gateway's loop (the
// assignment may have moved). Called with c.mu held.
func (c *Coordinator) unionLocked(now time.Time) {
	union := map[string]Member{}
	for _, g := range c.gws {
		for name, m := range g.members {
			u, ok := union[name]
			if !ok {
				u = Member{Replica: name, Address: m.holder.Address, ConfigHash: m.holder.ConfigHash, Since: m.holder.Since,
					Self: name == c.opts.Replica, ConfigMatch: m.holder.ConfigHash == c.opts.ConfigHash}
			}
			u.Gateways = append(u.Gateways, g.Name)
			union[name] = u
		}
	}
	mismatch := 0
	for name, u := range union {
		slices.Sort(u.Gateways)
		union[name] = u
		if u.ConfigMatch {
			continue
		}
		mismatch++
		if last, ok := c.mismatchLogged[name]; !ok || now.Sub(last) >= mismatchLogEvery {
			c.mismatchLogged[name] = now
			c.log.Warn("a replica runs another configuration: it is neither handed gateways nor fought over",
				"other", name, "other_address", u.Address, "other_config", u.ConfigHash, "config", c.opts.ConfigHash)
		}
	}
	if sameMembers(c.members, union) {
		return
	}
	for name := range union {
		if _, ok := c.members[name]; !ok {
			c.log.Info("replica joined", "other", name, "other_address", union[name].Address)
		}
	}
	for name := range c.members {
		if _, ok := union[name]; !ok {
			c.log.Info("replica left", "other", name)
			delete(c.mismatchLogged, name)
		}
	}
	c.members = union
	live := len(union)
	if _, ok := union[c.opts.Replica]; !ok {
		live++ // we are live even where our key is not held yet
	}
	c.m.members.Set(float64(live))
	c.m.configMismatch.Set(float64(mismatch))
	c.notifyLocked()
	for _, g := range c.gws {
		poke(g.wake)
	}
}

func sameMembers(a, b map[string]Member) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || x.Address != y.Address || x.ConfigHash != y.ConfigHash || !slices.Equal(x.Gateways, y.Gateways) {
			return false
		}
	}
	return true
}
