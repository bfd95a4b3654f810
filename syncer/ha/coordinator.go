package ha

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/mirror"
)

// Coordinator runs this replica's side of the coordination: a session and
// a membership key in every dedicated cluster, a watch on every gateway's
// lock and on the membership keys, and per gateway a loop that acquires,
// keeps or hands over the lock. All its methods are safe for concurrent use.
type Coordinator struct {
	opts    Options
	log     hclog.Logger
	m       *metrics
	gws     []*gwState
	byName  map[string]*gwState
	dcOf    map[string]string
	started time.Time

	mu      sync.Mutex
	running bool
	changed chan struct{}
	// members is the union of the clusters' membership views, by replica.
	members map[string]Member
	// mismatchLogged rate-limits the config-mismatch warning per replica.
	mismatchLogged map[string]time.Time
}

// gwState is one gateway's coordination state. Fields after mu-guarded are
// only touched with Coordinator.mu held.
type gwState struct {
	Gateway
	lockKey   string
	memberKey string
	log       hclog.Logger
	wake      chan struct{} // the decide loop
	renewNow  chan struct{} // the session loop
	// readFailures counts failed direct lock reads in a row (decide loop
	// only).
	readFailures int

	// mu-guarded:
	session   string // our session in this cluster ("" none)
	sessionOK bool   // renewed within its TTL
	lock      lockView
	lockIndex uint64
	lockValue []byte
	holder    mirror.Holder
	holderOK  bool
	verify    bool // read the lock directly before trusting the view
	lease     *Lease
	members   map[string]memberSeen // held membership keys, by replica
	released  []*api.KVPair         // membership keys no session holds
	loaded    bool                  // members read at least once
	failures  int                   // failed acquires since the lock was seen free
	retryAt   time.Time
	// handover bookkeeping: handovers that came back to us double the hold.
	handoverTo  string
	handovers   int
	holdUntil   time.Time
	lastEvent   string
	lastEventAt time.Time
}

type memberSeen struct {
	holder  mirror.Holder
	session string
	since   time.Time // first seen held by this session
}

// New validates opts and returns a coordinator; nothing talks to Consul
// before Run.
func New(opts Options) (*Coordinator, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		opts:           o,
		log:            o.Logger.Named("ha").With("replica", o.Replica),
		byName:         map[string]*gwState{},
		dcOf:           map[string]string{},
		changed:        make(chan struct{}),
		members:        map[string]Member{},
		mismatchLogged: map[string]time.Time{},
	}
	if c.m, err = newMetrics(o.Registerer, o.Gateways); err != nil {
		return nil, err
	}
	for _, g := range o.Gateways {
		s := &gwState{
			Gateway:   g,
			lockKey:   mirror.LockKey(o.KVPrefix, g.Name),
			memberKey: mirror.ReplicaKey(o.KVPrefix, o.Replica),
			log:       c.log.With("gateway", g.Name),
			wake:      make(chan struct{}, 1),
			renewNow:  make(chan struct{}, 1),
			members:   map[string]memberSeen{},
		}
		c.gws = append(c.gws, s)
		c.byName[g.Name] = s
		c.dcOf[g.Name] = g.SourceDC
	}
	return c, nil
}

func (c *Coordinator) now() time.Time { return c.opts.Now() }

// Run coordinates until ctx ends, then stops acquiring, ends every lease,
// releases every lock and membership key and destroys its sessions, so the
// other replicas take over at once (a release carries no lock-delay). It
// returns nil after that cleanup, or an error if it is already running.
func (c *Coordinator) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("ha: coordinator already running")
	}
	c.running = true
	c.started = c.now()
	c.mu.Unlock()
	c.log.Info("coordinating", "gateways", len(c.gws), "session_ttl", c.opts.SessionTTL,
		"lock_delay", c.opts.LockDelay, "takeover_bound", TakeoverBound(c.opts.SessionTTL, c.opts.LockDelay))

	var wg sync.WaitGroup
	for _, g := range c.gws {
		wg.Go(func() { c.sessionLoop(ctx, g) })
		wg.Go(func() { c.watchLock(ctx, g) })
		wg.Go(func() { c.watchMembers(ctx, g) })
		wg.Go(func() { c.decideLoop(ctx, g) })
	}
	<-ctx.Done()
	wg.Wait()
	c.shutdown(context.WithoutCancel(ctx))
	return nil
}

// shutdown ends every lease, releases locks and membership keys, destroys
// the sessions; all clusters in parallel, within shutdownTimeout.
func (c *Coordinator) shutdown(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, g := range c.gws {
		c.mu.Lock()
		c.endLease(g, ErrShutdown)
		// Release even when our view does not show the lock ours (an
		// acquire may have just succeeded): Consul ignores a release by a
		// session that does not hold the key.
		session, value := g.session, g.lockValue
		g.session, g.sessionOK = "", false
		c.mu.Unlock()
		c.m.sessionUp.WithLabelValues(g.Name).Set(0)
		if session == "" {
			continue
		}
		wg.Go(func() { c.leave(ctx, g, session, value) })
	}
	wg.Wait()
	c.notify()
	c.log.Info("stopped: locks released")
}

// leave releases what session holds in g's cluster and destroys it.
func (c *Coordinator) leave(ctx context.Context, g *gwState, session string, value []byte) {
	if _, _, err := g.Client.KV().Release(&api.KVPair{Key: g.lockKey, Session: session, Value: value}, writeOpts(ctx)); err != nil {
		g.log.Warn("release lock at shutdown failed; the session's destruction frees it after the lock-delay", "error", err)
	}
	// Delete the membership key only while our session holds it, so a
	// replica with the same ID that already took over keeps its key.
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: g.memberKey, Session: session}},
		{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: g.memberKey}},
	}
	if _, _, _, err := g.Client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		g.log.Debug("remove membership key at shutdown failed", "error", err)
	}
	if _, err := g.Client.Session().Destroy(session, writeOpts(ctx)); err != nil {
		g.log.Warn("destroy session at shutdown failed; it expires within two TTLs", "error", err)
	}
}

// Changed returns a channel that is closed at the next change of this
// replica's leases, of a gateway's holder, or of the membership. Call it
// again after each close for the next change.
func (c *Coordinator) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

func (c *Coordinator) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notifyLocked()
}

func (c *Coordinator) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Lease returns this replica's lease on gateway, if it holds one.
func (c *Coordinator) Lease(gateway string) (*Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.byName[gateway]
	if !ok || g.lease == nil || g.lease.Err() != nil {
		return nil, false
	}
	return g.lease, true
}

// Fenced tells the coordinator that a transaction carrying the lease's
// check-session op (for gateway, with session) was rejected by its fence:
// the lease ends at once (ErrFenced), and the lock is read again before the
// gateway is owned again. Reports for an already ended lease are ignored.
func (c *Coordinator) Fenced(gateway, session string) {
	c.mu.Lock()
	g, ok := c.byName[gateway]
	if !ok {
		c.mu.Unlock()
		c.log.Error("fence report for an unknown gateway", "gateway", gateway)
		return
	}
	if g.lease != nil && g.lease.Session == session {
		g.log.Warn("write rejected by the lock fence: stopping the gateway", "session", session)
		c.endLease(g, ErrFenced)
	}
	g.verify = true
	c.mu.Unlock()
	poke(g.wake)
	poke(g.renewNow)
}

// endLease ends g's lease (if any) with cause and records the transition.
// Called with c.mu held.
func (c *Coordinator) endLease(g *gwState, cause error) {
	if g.lease == nil {
		return
	}
	g.lease.end(cause)
	g.lease = nil
	event := eventLost
	switch {
	case errors.Is(cause, ErrFenced):
		event = eventFenced
	case errors.Is(cause, ErrHandedOver), errors.Is(cause, ErrShutdown):
		event = eventReleased
	}
	c.transition(g, event)
	if event == eventLost {
		g.log.Warn("lost the gateway", "cause", cause)
	} else {
		g.log.Info("gave up the gateway", "event", event, "cause", cause)
	}
}

// transition records a lease start or end. Called with c.mu held.
func (c *Coordinator) transition(g *gwState, event string) {
	owned := 0.0
	if event == eventAcquired {
		owned = 1
	}
	c.m.owned.WithLabelValues(g.Name).Set(owned)
	c.m.transitions.WithLabelValues(g.Name, event).Inc()
	g.lastEvent, g.lastEventAt = event, c.now()
	c.notifyLocked()
}

func (c *Coordinator) self() mirror.Holder {
	return mirror.Holder{Replica: c.opts.Replica, Address: c.opts.Address, ConfigHash: c.opts.ConfigHash, Since: c.started}
}
