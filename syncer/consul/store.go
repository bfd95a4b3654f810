package consul

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// Store reads and writes one gateway's dedicated cluster. It only ever
// touches nodes carrying gwsync's ownership meta for its gateway.
//
// Every txn it sends starts with the HA fence (a check-session on the
// gateway's lock, when set). The last txn of every Commit also advances
// the change feed with a check-and-set on the index this Store last saw:
// a cluster that restarted (empty) under a running cycle, or another
// writer, makes it fail as a whole (ErrConflict), so a marker is never
// written over a mirror the cycle did not fully write.
type Store struct {
	client     *api.Client
	enc        mirror.Encoder
	kvPrefix   string
	localQuery string
	timeout    time.Duration
	readConc   int
	txnConc    int
	log        hclog.Logger
	metrics    *syncer.Metrics

	mu       sync.Mutex // chain state and fence; never held across a call
	fence    *syncer.Fence
	loaded   bool
	changes  mirror.Changes
	chIdx    uint64 // ModifyIndex of the change feed (0: absent)
	mkIdx    uint64 // ModifyIndex of the marker (0: absent)
	coverage [mirror.CoverageShards][]string
	// cat: the catalog's node and service table indexes after the last
	// Load or Commit (catKnown false: unknown).
	catKnown bool
	cat      [2]uint64
	// pending: services (and coverage) written but not announced in the
	// change feed yet (a commit failed after some of its txns landed, or
	// a previous writer died between them); the next commit names them.
	// Load adds to it, never clears it.
	pending         []string
	pendingCoverage bool
}

// chain is what a read says about the records the write chain follows.
type chain struct {
	changes  mirror.Changes
	chIdx    uint64
	mkIdx    uint64
	coverage [mirror.CoverageShards][]string
	cat      [2]uint64
	catKnown bool
	// unannounced: services with entries newer than the change feed.
	unannounced []string
}

var _ syncer.Store = (*Store)(nil)

// StoreOptions configure NewStore.
type StoreOptions struct {
	Client  *api.Client
	Gateway string
	// NodePrefix and KVPrefix are the mirror's prefixes; LocalQuery the
	// local template's name prefix.
	NodePrefix, KVPrefix, LocalQuery string
	Timeout                          time.Duration
	ReadConcurrency                  int
	TxnConcurrency                   int
	Logger                           hclog.Logger
	Metrics                          *syncer.Metrics
}

// NewStore wraps a dedicated cluster client.
func NewStore(o StoreOptions) *Store {
	return &Store{client: o.Client, enc: mirror.Encoder{Gateway: o.Gateway, NodePrefix: o.NodePrefix}, kvPrefix: o.KVPrefix,
		localQuery: o.LocalQuery, timeout: o.Timeout, readConc: max(o.ReadConcurrency, 1), txnConc: max(o.TxnConcurrency, 1),
		log: o.Logger.Named("store"), metrics: o.Metrics}
}

func (s *Store) gateway() string { return s.enc.Gateway }

func (s *Store) qopts(ctx context.Context) *api.QueryOptions {
	return (&api.QueryOptions{}).WithContext(ctx)
}

// callCtx bounds one call; a write is detached from ctx's cancellation (a
// shutdown lets the txn in flight finish) but keeps its own deadline.
func (s *Store) callCtx(ctx context.Context, write bool) (context.Context, context.CancelFunc) {
	if write {
		ctx = context.WithoutCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// SetFence makes every later txn start with a check-session on f.
func (s *Store) SetFence(f syncer.Fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Session == "" {
		s.fence = nil
		return
	}
	s.fence = &f
}

// Load reads every owned node and instance, the foreign node names and the
// gateway's records, and resets the write chain to what it read. Entries
// newer than the change feed (a writer died between the txns of a commit)
// are announced by the next commit.
func (s *Store) Load(ctx context.Context) (syncer.Snapshot, error) {
	snap, ch, err := s.read(ctx)
	if err != nil {
		return snap, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	s.changes, s.chIdx, s.mkIdx, s.coverage = ch.changes, ch.chIdx, ch.mkIdx, ch.coverage
	s.cat, s.catKnown = ch.cat, ch.catKnown
	if len(ch.unannounced) > 0 {
		s.pending = append(s.pending, ch.unannounced...)
		s.log.Info("entries newer than the change feed (a write was cut short): the next write announces them", "services", len(ch.unannounced))
	}
	return snap, nil
}

// Read is Load for a dry run: it changes nothing of the Store's state.
func (s *Store) Read(ctx context.Context) (syncer.Snapshot, error) {
	snap, _, err := s.read(ctx)
	return snap, err
}

// read reads the mirror and its records.
func (s *Store) read(ctx context.Context) (syncer.Snapshot, chain, error) {
	snap := syncer.Snapshot{State: syncer.NewState()}
	var ch chain
	// The catalog's indexes before the read: a change during the read
	// moves them, so the next Unchanged says so (and the model is reread).
	cat, catErr := s.catalogIndex(ctx)
	ch.cat, ch.catKnown = cat, catErr == nil
	cctx, cancel := s.callCtx(ctx, false)
	nodes, _, err := s.client.Catalog().Nodes(s.qopts(cctx))
	nodeIdx := map[string]uint64{}
	for _, n := range nodes {
		nodeIdx[n.Node] = n.ModifyIndex
	}
	cancel()
	if err != nil {
		return snap, ch, fmt.Errorf("read nodes: %w", err)
	}
	for _, n := range nodes {
		switch o := s.enc.Owner(n.Meta); o {
		case mirror.Mine:
			snap.State.Nodes[n.Node] = mirror.DecodeNode(n.Node, n.Address, n.TaggedAddresses, n.Meta)
		default:
			snap.State.Foreign[n.Node] = o
		}
	}
	owned := s.owned()
	cctx, cancel = s.callCtx(ctx, false)
	q := s.qopts(cctx)
	q.NodeMeta = owned
	names, meta, err := s.client.Catalog().Services(q)
	cancel()
	if err != nil {
		return snap, ch, fmt.Errorf("read services: %w", err)
	}
	// The node list above is filtered by design (a least-privilege token
	// reads nodes under the node prefix only); reads of owned entries
	// must not be.
	if filtered(meta) {
		return snap, ch, fmt.Errorf("read services: %w", s.hiddenEntries(ctx))
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	results := make([][]*api.CatalogService, len(list))
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(s.readConc)
	for i, name := range list {
		eg.Go(safe(func() error {
			cctx, cancel := s.callCtx(gctx, false)
			defer cancel()
			q := s.qopts(cctx)
			q.NodeMeta = owned
			entries, meta, err := s.client.Catalog().Service(name, "", q)
			if err != nil {
				return fmt.Errorf("read service %q: %w", name, err)
			}
			if filtered(meta) {
				return fmt.Errorf("read service %q: %w", name, s.hiddenEntries(gctx))
			}
			results[i] = entries
			return nil
		}))
	}
	if err := eg.Wait(); err != nil {
		return snap, ch, err
	}
	if err := s.readRecords(ctx, &snap, &ch); err != nil {
		return snap, ch, err
	}
	for _, entries := range results {
		for _, cs := range entries {
			if _, ok := snap.State.Nodes[cs.Node]; ok { // else registered after the node list was read
				snap.State.PutService(mirror.DecodeCatalogService(cs))
				if cs.ModifyIndex > ch.chIdx || nodeIdx[cs.Node] > ch.chIdx {
					ch.unannounced = append(ch.unannounced, cs.ServiceName)
				}
			}
		}
	}
	return snap, ch, nil
}

// Unchanged compares the catalog's node and service table indexes with the
// ones after this Store's last Load or Commit.
func (s *Store) Unchanged(ctx context.Context) (bool, error) {
	cat, err := s.catalogIndex(ctx)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.catKnown && cat == s.cat, nil
}

// catalogIndex reads the node and service tables' indexes with two reads
// whose filter matches nothing (an empty body, whatever the catalog's
// size). The indexes move with any catalog write: ours, an operator's, a
// restart's.
func (s *Store) catalogIndex(ctx context.Context) ([2]uint64, error) {
	var out [2]uint64
	for i, q := range []struct{ path, filter string }{{"/v1/catalog/nodes", `Node == ""`}, {"/v1/catalog/services", `ServiceName == ""`}} {
		cctx, cancel := s.callCtx(ctx, false)
		var body any
		meta, err := s.client.Raw().Query(q.path, &body, (&api.QueryOptions{Filter: q.filter}).WithContext(cctx))
		cancel()
		if err != nil {
			return out, fmt.Errorf("read catalog index: %w", err)
		}
		out[i] = meta.LastIndex
	}
	return out, nil
}

// LoadServices reads the entries of services, owned or not (no catalog
// read of the whole cluster): their owned instances and nodes, and the
// names of the nodes they sit on that gwsync does not own.
func (s *Store) LoadServices(ctx context.Context, services []string) (syncer.Snapshot, error) {
	snap := syncer.Snapshot{State: syncer.NewState()}
	for _, name := range services {
		cctx, cancel := s.callCtx(ctx, false)
		entries, _, err := s.client.Catalog().Service(name, "", s.qopts(cctx))
		cancel()
		if err != nil {
			return snap, fmt.Errorf("read service %q: %w", name, err)
		}
		for _, cs := range entries {
			if o := s.enc.Owner(cs.NodeMeta); o != mirror.Mine {
				snap.State.Foreign[cs.Node] = o
				continue
			}
			snap.State.Nodes[cs.Node] = mirror.DecodeNode(cs.Node, cs.Address, cs.TaggedAddresses, cs.NodeMeta)
			snap.State.PutService(mirror.DecodeCatalogService(cs))
		}
	}
	return snap, nil
}

// readRecords reads the marker, the change feed and the coverage.
func (s *Store) readRecords(ctx context.Context, snap *syncer.Snapshot, ch *chain) error {
	cctx, cancel := s.callCtx(ctx, false)
	defer cancel()
	prefix := mirror.GatewayPrefix(s.kvPrefix, s.gateway())
	pairs, meta, err := s.client.KV().List(prefix, s.qopts(cctx))
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	if filtered(meta) {
		return fmt.Errorf("read records: %w", s.hiddenKeys(prefix))
	}
	covPrefix := mirror.CoveragePrefix(s.kvPrefix, s.gateway())
	cov, meta, err := s.client.KV().List(covPrefix, s.qopts(cctx))
	if err != nil {
		return fmt.Errorf("read coverage: %w", err)
	}
	if filtered(meta) {
		return fmt.Errorf("read coverage: %w", s.hiddenKeys(covPrefix))
	}
	for _, kv := range pairs {
		switch kv.Key {
		case mirror.MarkerKey(s.kvPrefix, s.gateway()):
			ch.mkIdx = kv.ModifyIndex
			if m, err := mirror.DecodeMarker(kv.Value); err == nil && m.Gateway == s.gateway() {
				snap.Marker = &m
			} else {
				s.log.Warn("sync marker unreadable or not this gateway's: it will be rewritten by the next complete sync", "error", err)
			}
		case mirror.ChangesKey(s.kvPrefix, s.gateway()):
			ch.chIdx = kv.ModifyIndex
			if c, err := mirror.DecodeChanges(kv.Value); err == nil {
				ch.changes = c
			}
		}
	}
	if len(cov) > 0 {
		snap.Coverage = map[string]bool{}
	}
	for _, kv := range cov {
		if sh, err := mirror.DecodeCoverageShard(kv.Value); err == nil && kv.Key == mirror.CoverageKey(s.kvPrefix, s.gateway(), sh.Shard) {
			ch.coverage[sh.Shard] = sh.Services
			for _, name := range sh.Services {
				snap.Coverage[name] = true
			}
		}
	}
	return nil
}

// Heartbeat refreshes the marker's CheckedAt if it is still this
// gateway's marker at the index just read.
func (s *Store) Heartbeat(ctx context.Context, now time.Time) (bool, error) {
	cctx, cancel := s.callCtx(ctx, false)
	kv, _, err := s.client.KV().Get(mirror.MarkerKey(s.kvPrefix, s.gateway()), s.qopts(cctx))
	cancel()
	if err != nil {
		return false, fmt.Errorf("read sync marker: %w", err)
	}
	if kv == nil {
		return false, nil
	}
	m, err := mirror.DecodeMarker(kv.Value)
	s.mu.Lock()
	mine := s.mkIdx != 0 && kv.ModifyIndex == s.mkIdx
	s.mu.Unlock()
	if err != nil || m.Gateway != s.gateway() || !mine {
		// Gone, unreadable, another gateway's, or not the one this
		// controller last wrote or read (restored, rewritten by hand):
		// only a complete sync writes a marker.
		return false, nil
	}
	m.CheckedAt = now
	ops, session := s.fenced([]*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: kv.Key, Value: m.Encode(), Index: kv.ModifyIndex}}})
	res, err := s.send(ctx, ops)
	if err != nil {
		return false, err
	}
	if !res.ok && session != "" && isFenceFailure(res.errs[0]) {
		return false, &syncer.FencedError{Session: session}
	}
	if !res.ok {
		return false, nil
	}
	s.mu.Lock()
	s.mkIdx = res.kvIndex[kv.Key]
	s.mu.Unlock()
	return true, nil
}

// EnsureLocalTemplate creates or updates the local query template; an
// identical one is left alone.
func (s *Store) EnsureLocalTemplate(ctx context.Context) error {
	cctx, cancel := s.callCtx(ctx, true)
	defer cancel()
	want := mirror.LocalTemplate(s.localQuery, s.gateway())
	return ensureQuery(cctx, s.client, s.qopts(cctx), "", want, true, s.log)
}

// fenced prepends the fence (if any) to ops, and returns the session it
// checks ("" without a fence).
func (s *Store) fenced(ops []*api.TxnOp) ([]*api.TxnOp, string) {
	s.mu.Lock()
	f := s.fence
	s.mu.Unlock()
	if f == nil {
		return ops, ""
	}
	check := &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCheckSession, Key: f.Key, Session: f.Session}}
	return append([]*api.TxnOp{check}, ops...), f.Session
}

// sent is the outcome of one txn.
type sent struct {
	ok      bool
	errs    map[int]string    // op index -> error (409)
	kvIndex map[string]uint64 // key -> new ModifyIndex
	nodes   map[string]uint64 // node -> new ModifyIndex
	resp    *api.TxnResponse
}

// send sends one txn; a 409 is not an error (see sent.errs).
func (s *Store) send(ctx context.Context, ops []*api.TxnOp) (sent, error) {
	cctx, cancel := s.callCtx(ctx, true)
	defer cancel()
	ok, resp, _, err := s.client.Txn().Txn(ops, s.qopts(cctx))
	if err != nil {
		s.metrics.DedicatedTxns.WithLabelValues(s.gateway(), syncer.ResultError).Inc()
		return sent{}, fmt.Errorf("txn to dedicated cluster: %w", err)
	}
	out := sent{ok: ok, resp: resp, errs: map[int]string{}, kvIndex: map[string]uint64{}, nodes: map[string]uint64{}}
	if !ok {
		s.metrics.DedicatedTxns.WithLabelValues(s.gateway(), syncer.ResultError).Inc()
		for _, e := range resp.Errors {
			out.errs[e.OpIndex] = e.What
		}
		return out, nil
	}
	s.metrics.DedicatedTxns.WithLabelValues(s.gateway(), syncer.ResultOK).Inc()
	for _, r := range resp.Results {
		switch {
		case r.KV != nil:
			out.kvIndex[r.KV.Key] = r.KV.ModifyIndex
		case r.Node != nil:
			out.nodes[r.Node.Node] = r.Node.ModifyIndex
		}
	}
	return out, nil
}

var errStale = errors.New("write chain unknown: reload first")

// safe turns a panic in fn (a goroutine of an errgroup, where nothing else
// could recover it) into an error.
func safe(fn func() error) func() error {
	return func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		return fn()
	}
}
