// Package gateway is the resolver library gateway nodes embed. It answers
// "which healthy instances does service S have" from the gateway's
// dedicated Consul cluster (the mirror gwsync keeps), falls back to the
// public cluster's prepared query through a circuit breaker and a bound on
// calls in flight, and holds the last good answer in memory and on disk.
//
// Its rule (DESIGN.md invariant 6): it never answers "no instances" while
// it holds a good answer, unless a healthy, synced source says so and the
// public cluster agrees.
//
// Every service asked for once is kept fresh by a background blocking
// query, so Resolve is a map read: no network, no lock, no allocation.
package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"

	"github.com/gwsync/gwsync/mirror"
)

// DefaultMaxServices bounds how many services are cached and watched, so
// requests for made-up names cannot grow watchers without limit.
const DefaultMaxServices = 10000

// Resolver resolves service names to healthy instances. Create it with New,
// run it with Run; Resolve is safe for concurrent use.
type Resolver struct {
	opts      Options
	log       hclog.Logger
	m         *metrics
	markerKey string

	localBr      *breaker
	publicBr     *breaker
	localBrState atomic.Int32 // gobreaker.State, set in OnStateChange
	publicSem    chan struct{}
	flight       singleflight.Group

	// entries is replaced, never modified, under entriesMu (copy on
	// write): new services are rare, lookups are constant.
	entries   atomic.Pointer[map[string]*entry]
	entriesMu sync.Mutex
	stopped   bool // under entriesMu: no new watchers once Run ends
	full      bool // under entriesMu: MaxServices reached (logged once)
	wg        sync.WaitGroup

	snapshot map[string]*Answer // loaded at start; read-only afterwards
	dirty    atomic.Bool

	stateMu sync.Mutex
	marker  markerInfo                 // under stateMu
	local   atomic.Pointer[localState] // replaced under stateMu

	base   context.Context
	cancel context.CancelFunc
}

type entry struct {
	service string
	answer  atomic.Pointer[Answer]
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
		opts:      opts,
		log:       log,
		m:         m,
		markerKey: mirror.MarkerKey(opts.KVPrefix, opts.Gateway),
		publicSem: make(chan struct{}, opts.MaxPublicInFlight),
	}
	r.base, r.cancel = context.WithCancel(context.Background())
	empty := map[string]*entry{}
	r.entries.Store(&empty)
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
// from. A service seen before is answered from memory; the first lookup of
// a service asks the clusters (one call per cluster however many callers
// wait). An Answer with no instances is not an error: the service has none.
func (r *Resolver) Resolve(ctx context.Context, service string) (Answer, error) {
	if e := (*r.entries.Load())[service]; e != nil {
		if a := e.answer.Load(); a != nil {
			return r.serve(a), nil
		}
	}
	return r.resolveSlow(ctx, service)
}

func (r *Resolver) serve(a *Answer) Answer {
	out := *a
	if out.Age = r.opts.Now().Sub(a.FetchedAt); out.Age < 0 {
		out.Age = 0
	}
	res := resultOK
	if len(a.Instances) == 0 {
		res = resultEmpty
	}
	r.m.lookups[a.Source][res].Inc()
	r.m.answerAge.Observe(out.Age.Seconds())
	return out
}

func (r *Resolver) resolveSlow(ctx context.Context, service string) (Answer, error) {
	ch := r.flight.DoChan(service, func() (any, error) { return r.firstLookup(service) })
	select {
	case res := <-ch:
		if res.Err != nil {
			r.m.lookups[SourceNone][resultError].Inc()
			return Answer{Service: service}, res.Err
		}
		return r.serve(res.Val.(*Answer)), nil
	case <-ctx.Done():
		r.m.lookups[SourceNone][resultError].Inc()
		return Answer{Service: service}, fmt.Errorf("resolve %s: %w", service, ctx.Err())
	}
}

// firstLookup runs once per service however many callers wait on it. It
// uses the resolver's own context, not a caller's, so one caller giving up
// does not fail the others.
func (r *Resolver) firstLookup(service string) (*Answer, error) {
	if e := (*r.entries.Load())[service]; e != nil {
		if a := e.answer.Load(); a != nil {
			return a, nil
		}
	}
	ctx := r.base
	held := r.snapshot[service]
	var (
		a   *Answer
		idx uint64
	)
	if r.ensureMarker(ctx) {
		insts, i, err := r.queryLocal(ctx, service)
		if err == nil {
			a, idx = r.afterLocal(ctx, service, held, insts), i
		} else {
			r.log.Debug("local lookup failed", "service", service, "error", err)
		}
	}
	if a == nil {
		var err error
		if a, err = r.afterPublic(ctx, service, held); a == nil {
			return nil, fmt.Errorf("resolve %s: no cluster answered and no snapshot: %w", service, err)
		}
	}
	r.install(service, a, idx)
	return a, nil
}

// install caches a first answer and starts the service's watcher.
func (r *Resolver) install(service string, a *Answer, idx uint64) {
	r.entriesMu.Lock()
	defer r.entriesMu.Unlock()
	old := *r.entries.Load()
	if _, ok := old[service]; ok {
		return
	}
	if len(old) >= DefaultMaxServices {
		if !r.full {
			r.full = true
			r.log.Warn("service limit reached: further services are resolved but not cached", "limit", DefaultMaxServices)
		}
		return
	}
	e := &entry{service: service}
	e.answer.Store(a)
	next := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[service] = e
	r.entries.Store(&next)
	r.dirty.Store(true)
	if !r.stopped {
		r.wg.Add(1)
		go r.watch(e, idx)
	}
}

// store replaces a service's answer.
func (r *Resolver) store(e *entry, a *Answer) {
	old := e.answer.Load()
	if a == nil || a == old {
		return
	}
	e.answer.Store(a)
	r.dirty.Store(true)
	if old == nil || old.Source != a.Source || len(old.Instances) != len(a.Instances) {
		r.log.Info("answer changed", "service", e.service, "source", a.Source.String(), "instances", len(a.Instances))
	}
}

// Run keeps the sync marker and snapshot up to date until ctx ends, then
// stops every watcher and writes a final snapshot. Resolve may be called
// before Run starts; background refresh needs Run.
func (r *Resolver) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, r.cancel)
	defer stop()
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); r.markerLoop(r.base) }()
	go func() { defer loops.Done(); r.snapshotLoop(r.base) }()
	<-r.base.Done()
	r.entriesMu.Lock()
	r.stopped = true
	r.entriesMu.Unlock()
	loops.Wait()
	r.wg.Wait()
	r.writeSnapshot()
	return nil
}

// Status is a point-in-time view for health endpoints and tests.
type Status struct {
	// LocalUsable: the dedicated cluster is synced and its breaker is not
	// open, so watchers read it; otherwise they read the public cluster.
	LocalUsable   bool
	LocalReason   string
	LocalBreaker  string
	PublicBreaker string
	Services      int
}

// Status reports the resolver's state.
func (r *Resolver) Status() Status {
	st := r.local.Load()
	return Status{
		LocalUsable:   st.usable,
		LocalReason:   st.reason,
		LocalBreaker:  r.localBr.cb.State().String(),
		PublicBreaker: r.publicBr.cb.State().String(),
		Services:      len(*r.entries.Load()),
	}
}

// localQueryOptions are the options of every mirror read (fromMirror keeps
// only this gateway's entries). Stale reads are fine: the marker, read the same
// way, tells whether the data is current.
func localQueryOptions(ctx context.Context, idx uint64, wait time.Duration) *api.QueryOptions {
	q := &api.QueryOptions{AllowStale: true, WaitIndex: idx, WaitTime: wait}
	return q.WithContext(ctx)
}
