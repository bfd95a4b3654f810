// Package gateway is the resolver library gateway nodes embed. It answers
// "which healthy instances does service S have" from the gateway's
// dedicated Consul cluster (the mirror gwsync keeps), falls back to the
// public cluster's prepared query through a circuit breaker, a rate limit
// and a bound on calls in flight, and holds the last good answers in
// memory and on disk.
//
// Its rules (DESIGN.md invariant 6): it never answers "no instances" while
// it holds a good answer, unless a healthy, synced source says so and the
// public cluster agrees; a service the mirror does not cover is a local
// miss that goes to the public cluster, never "none".
//
// Scale: services looked up are held, and Resolve is a lock-free map read
// with no network call and no allocation. They are kept fresh by one
// long-lived blocking read per resolver (the gateway's records: marker,
// change feed), which tells which services changed; only those are read
// again. Services idle for a while are forgotten, answers with no
// instances are remembered briefly without any watch, and no goroutine
// belongs to a service.
package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// refreshQueue bounds refreshes waiting for a worker; a lookup that finds
// it full leaves its answer due, and a later lookup asks again.
const refreshQueue = 1024

// Resolver resolves service names to healthy instances. Create it with New,
// run it with Run; Resolve is safe for concurrent use.
type Resolver struct {
	opts Options
	log  hclog.Logger
	m    *metrics

	localBr      *breaker
	publicBr     *breaker
	localBrState atomic.Int32 // gobreaker.State, set in OnStateChange
	localSem     chan struct{}
	publicSem    chan struct{}
	publicRate   *rate.Limiter
	lookups      singleflight.Group // first lookups, keyed by service name only

	held     *table
	neg      *negCache
	evictMu  sync.Mutex // one capacity eviction at a time
	refreshQ chan *entry
	snapshot map[string]*Answer // loaded at start; read-only afterwards
	dirty    atomic.Bool

	stateMu     sync.Mutex
	view        view        // under stateMu
	staleTimer  *time.Timer // under stateMu
	local       atomic.Pointer[localState]
	confirmedAt atomic.Int64 // Unix nanoseconds the mirror was last vouched for
	watchRounds atomic.Uint64
	started     chan struct{} // closed after the watch's first round
	startOnce   sync.Once

	// filteredLoggedAt is when an ACL-filtered answer was last logged at
	// warn level (Unix nanoseconds).
	filteredLoggedAt atomic.Int64

	base   context.Context
	cancel context.CancelFunc
}

// New builds a Resolver and loads the disk snapshot. It makes no network
// call. A snapshot that cannot be used is logged and ignored.
func New(opts Options) (*Resolver, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, fmt.Errorf("new resolver: %w", err)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new resolver: %w", err)
	}
	log := opts.Logger.Named("resolver").With("gateway", opts.Gateway)
	r := &Resolver{
		opts:       opts,
		log:        log,
		m:          m,
		localSem:   make(chan struct{}, opts.ReadConcurrency),
		publicSem:  make(chan struct{}, opts.MaxPublicInFlight),
		publicRate: rate.NewLimiter(rate.Limit(opts.PublicRate), opts.PublicBurst),
		held:       newTable(),
		neg:        newNegCache(opts.MaxNegative),
		refreshQ:   make(chan *entry, refreshQueue),
		started:    make(chan struct{}),
	}
	r.base, r.cancel = context.WithCancel(context.Background())
	r.localBr = newBreaker(clusterLocal, opts.LocalBreaker, m.breakerState.WithLabelValues(clusterLocal), log, func(s gobreaker.State) {
		r.localBrState.Store(int32(s))
		r.updateLocal()
	})
	r.publicBr = newBreaker(clusterPublic, opts.PublicBreaker, m.breakerState.WithLabelValues(clusterPublic), log, nil)
	st := &localState{reason: "sync marker not read yet"}
	st.ctx, st.cancel = context.WithCancel(r.base)
	r.local.Store(st)
	r.loadSnapshot()
	return r, nil
}

// Resolve returns the healthy instances of service and where they came
// from. A held service is answered from memory; the first lookup of a
// service asks the clusters (one call per cluster however many callers
// wait). An Answer with no instances is not an error: the service has none.
func (r *Resolver) Resolve(ctx context.Context, service string) (Answer, error) {
	if e := r.held.get(service); e != nil {
		if a := e.answer.Load(); a != nil {
			return r.serve(e, a), nil
		}
	}
	return r.resolveSlow(ctx, service)
}

// serve answers from a held entry. It notes the lookup and, when the
// answer is not a trusted local one and is due, queues a background
// refresh; the caller gets the held answer at once either way.
func (r *Resolver) serve(e *entry, a *Answer) Answer {
	now := r.opts.Now()
	st := r.local.Load()
	out := r.present(a, st, now)
	if e != nil {
		e.touch(now.Unix())
		trusted := a.Source == SourceLocal && st.usable
		if !trusted && now.UnixNano() >= e.nextRefresh.Load() {
			r.kick(e)
		}
	}
	return out
}

// present is what a caller sees of a: a local answer is as old as the
// mirror's last confirmation, and is last-known-good while the local
// cluster is not usable.
func (r *Resolver) present(a *Answer, st *localState, now time.Time) Answer {
	out := *a
	if a.Source == SourceLocal {
		if c := r.confirmedAt.Load(); c > a.FetchedAt.UnixNano() {
			out.FetchedAt = time.Unix(0, c)
		}
		if !st.usable {
			out.Source = SourceMemory
		}
	}
	if out.Age = now.Sub(out.FetchedAt); out.Age < 0 {
		out.Age = 0
	}
	res := resultOK
	if len(a.Instances) == 0 {
		res = resultEmpty
	}
	r.m.lookups[out.Source][res].Inc()
	r.m.answerAge.Observe(out.Age.Seconds())
	return out
}

// Run keeps held services fresh (the watch, the probe, refresh workers),
// evicts idle ones and writes the snapshot until ctx ends, then writes a
// final snapshot. Resolve may be called before Run starts (first lookups
// then wait up to LookupTimeout for Run's first read of the mirror);
// background refresh needs Run.
func (r *Resolver) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	var loops sync.WaitGroup
	loops.Go(func() { r.watchLoop(r.base) })
	loops.Go(func() { r.probeLoop(r.base) })
	loops.Go(func() { r.janitorLoop(r.base) })
	loops.Go(func() { r.snapshotLoop(r.base) })
	for range r.opts.ReadConcurrency + r.opts.MaxPublicInFlight {
		loops.Go(func() { r.refreshWorker(r.base) })
	}
	<-r.base.Done()
	loops.Wait()
	r.stateMu.Lock()
	if r.staleTimer != nil {
		r.staleTimer.Stop()
	}
	r.stateMu.Unlock()
	r.writeSnapshot()
	return nil
}

// Status is a point-in-time view for health endpoints and tests.
type Status struct {
	// LocalUsable: the dedicated cluster is synced, its records are known
	// and its breaker is not open, so covered services are answered from
	// it; otherwise lookups go to the public cluster.
	LocalUsable   bool
	LocalReason   string
	LocalBreaker  string
	PublicBreaker string
	// Services are held (kept fresh); Negative are remembered answers
	// with no instances; Covered is the mirror's coverage size (0 while
	// not usable).
	Services int
	Negative int
	Covered  int
}

// Status reports the resolver's state.
func (r *Resolver) Status() Status {
	st := r.local.Load()
	return Status{
		LocalUsable:   st.usable,
		LocalReason:   st.reason,
		LocalBreaker:  r.localBr.cb.State().String(),
		PublicBreaker: r.publicBr.cb.State().String(),
		Services:      r.held.len(),
		Negative:      r.neg.len(),
		Covered:       st.cov.len(),
	}
}
