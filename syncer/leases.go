package syncer

import (
	"context"
	"sync"

	"github.com/gwsync/gwsync/syncer/ha"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Leases is the HA coordinator as the controller uses it (syncer/ha): it
// says which gateways this replica holds the lock of. Only the holder
// writes a gateway, and every write it sends is fenced with the lease's
// check-session, so a replica that lost the lock (paused past its
// session's expiry, cut off, handed over) cannot write, even mid-cycle.
type Leases interface {
	Run(ctx context.Context) error
	Lease(gateway string) (*ha.Lease, bool)
	// Changed is closed at the next change of this replica's leases.
	Changed() <-chan struct{}
	// Fenced reports a write rejected by the lease's fence.
	Fenced(gateway, session string)
	Owners() []ha.GatewayOwner
	Status() ha.Status
}

// leaseState is what the controller keeps of a gateway's lease.
type leaseState struct {
	mu    sync.Mutex
	lease *ha.Lease
}

// session is the session of the last lease (the fence in use).
func (l *leaseState) session() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease == nil {
		return ""
	}
	return l.lease.Session
}

func (l *leaseState) get() *ha.Lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lease != nil && l.lease.Err() != nil {
		return nil
	}
	return l.lease
}

// followLeases applies lease changes: a gateway acquired gets its fence
// set and a full reconcile (a new owner reads everything; an unchanged
// mirror costs no write); a gateway lost stops at once (its loops see it
// unowned, and its store keeps the old fence, so any write still in flight
// is rejected by Consul).
func (c *Controller) followLeases(ctx context.Context) {
	for {
		changed := c.leases.Changed()
		for _, name := range c.order {
			g := c.gateways[name]
			cur, ok := c.leases.Lease(name)
			valid := ok && cur.Err() == nil
			g.lease.mu.Lock()
			last := g.lease.lease
			g.lease.mu.Unlock()
			switch {
			case valid && cur != last:
				// The fence first: once the lease is published, the
				// gateway's loops write, and every write must carry it.
				g.store.SetFence(Fence{Key: cur.Key, Session: cur.Session})
				g.lease.mu.Lock()
				g.lease.lease = cur
				g.lease.mu.Unlock()
				g.setOwned(true)
				g.log.Info("this replica now writes the gateway", "session", cur.Session)
				g.requestFull()
			case !valid && g.snapshot().Owned:
				// The store keeps the lost lease's fence: a write still
				// in flight is rejected by Consul.
				g.setOwned(false)
				var why error
				if last != nil {
					why = last.Err()
				}
				g.log.Warn("this replica no longer writes the gateway", "reason", why)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// leaseCtx is ctx, also cancelled the moment this replica loses the
// gateway's lease: its work stops at once (any write still sent would be
// rejected by the fence anyway).
func (c *Controller) leaseCtx(ctx context.Context, g *gatewaySyncer) (context.Context, context.CancelFunc) {
	if c.leases == nil {
		return context.WithCancel(ctx)
	}
	l := g.lease.get()
	if l == nil { // lost already: nothing may run
		lctx, cancel := context.WithCancel(ctx)
		cancel()
		return lctx, cancel
	}
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(l.Context(), cancel)
	return lctx, func() { stop(); cancel() }
}

// Replica returns this replica's id.
func (c *Controller) Replica() string { return c.replica }

// Owner returns who writes gateway: its replica and admin address, and
// whether that is this replica. Without HA this replica writes everything.
func (c *Controller) Owner(gateway string) (replica, address string, self bool) {
	if c.leases == nil {
		return c.replica, "", true
	}
	for _, o := range c.leases.Owners() {
		if o.Gateway == gateway {
			return o.Replica, o.Address, o.Self
		}
	}
	return "", "", false
}

// HAStatus is the coordinator's view (nil without HA).
func (c *Controller) HAStatus() *ha.Status {
	if c.leases == nil {
		return nil
	}
	st := c.leases.Status()
	return &st
}

// EventStatus reports the public change feed's loops (nil without it).
func (c *Controller) EventStatus() []watch.LoopStatus {
	if s, ok := c.detector.(interface{ Status() []watch.LoopStatus }); ok {
		return s.Status()
	}
	return nil
}
