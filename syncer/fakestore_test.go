package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// fakeStore is one gateway's dedicated cluster: a catalog and a KV store
// in memory, written the way syncer/consul writes a real one. Entries are
// kept in their API form (what a txn carries) and decoded on every Load,
// as Consul hands them back, so the encode/decode round trip is part of
// every test. Commit applies the fence (check-session on the lock key),
// Consul's per-op refusals (a node create over an existing node, a
// service on a missing node, ops a test rejects), the change-feed chain
// (check-and-set on the index last loaded), the coverage shards and the
// marker (check-and-set). A Commit whose chain check fails lands none of
// its ops (syncer/consul checks the change feed's index in every batch).
type fakeStore struct {
	mu       sync.Mutex
	enc      mirror.Encoder
	kvPrefix string

	nodes    map[string]api.Node
	services map[string]map[string]api.AgentService // node -> ID -> instance
	kv       map[string]fakeKV
	index    uint64

	// The write chain, as syncer/consul keeps it.
	loaded   bool
	changes  mirror.Changes
	chIdx    uint64
	mkIdx    uint64
	coverage [mirror.CoverageShards][]string
	fence    *Fence

	// Failures.
	loadErr, commitErr, heartbeatErr, templateErr error
	// reject, if set, refuses an op with the returned reason ("" accepts).
	reject func(o fakeOp) string
	// beforeCommit, if set, runs (unlocked) before Commit number n (from 1).
	beforeCommit func(n int)

	// Observations.
	commits    int
	ops        []fakeOp // every catalog op received, applied or not
	heartbeats int
	localTmpl  int      // local template writes
	tmplOK     bool     // the local template exists
	problems   []string // contract violations seen by the fake
}

type fakeKV struct {
	Value       []byte
	ModifyIndex uint64
	Session     string
}

// fakeOp is one catalog op of a Commit.
type fakeOp struct {
	Verb    string // node_set, node_create, service_set, service_delete, node_delete
	Node    string
	Service string
	ID      string
	node    api.Node
	svc     api.AgentService
}

func newFakeStore(gateway string) *fakeStore {
	return &fakeStore{enc: mirror.Encoder{Gateway: gateway, NodePrefix: mirror.DefaultNodePrefix}, kvPrefix: mirror.DefaultKVPrefix,
		nodes: map[string]api.Node{}, services: map[string]map[string]api.AgentService{}, kv: map[string]fakeKV{}}
}

var _ Store = (*fakeStore)(nil)

func (s *fakeStore) gateway() string { return s.enc.Gateway }

// putForeign registers a node gwsync does not own (meta decides: add
// gwsync's keys for another gateway's node) with instances of services.
func (s *fakeStore) putForeign(node string, meta map[string]string, services ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	s.nodes[node] = api.Node{Node: node, Address: "192.0.2.1", Meta: meta, ModifyIndex: s.index}
	for _, name := range services {
		if s.services[node] == nil {
			s.services[node] = map[string]api.AgentService{}
		}
		s.services[node][name+"-1"] = api.AgentService{ID: name + "-1", Service: name, Port: 1}
	}
}

// restartEmpty loses everything, as a dedicated cluster restarted without
// its data does; the controller's chain state is kept (it cannot know).
func (s *fakeStore) restartEmpty() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes, s.services, s.kv = map[string]api.Node{}, map[string]map[string]api.AgentService{}, map[string]fakeKV{}
	s.tmplOK = false
}

// holdLock makes session the holder of the gateway's lock.
func (s *fakeStore) holdLock(session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	key := mirror.LockKey(s.kvPrefix, s.gateway())
	s.kv[key] = fakeKV{Value: mirror.Holder{Replica: session}.Encode(), ModifyIndex: s.index, Session: session}
}

func (s *fakeStore) SetFence(f Fence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Session == "" {
		s.fence = nil
		return
	}
	s.fence = &f
}

// fencedLocked reports whether the fence (if any) fails. mu held.
func (s *fakeStore) fencedLocked() bool {
	return s.fence != nil && s.kv[s.fence.Key].Session != s.fence.Session
}

// Unchanged always says "changed": the fake's tests want every full
// reconcile to reread the cluster (syncer/consul's index check is tested
// end to end).
func (s *fakeStore) Unchanged(ctx context.Context) (bool, error) { return false, nil }

// Read is Load without touching the chain (a dry run).
func (s *fakeStore) Read(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	saved := [...]any{s.loaded, s.changes, s.chIdx, s.mkIdx, s.coverage}
	s.mu.Unlock()
	snap, err := s.Load(ctx)
	s.mu.Lock()
	s.loaded, s.changes, s.chIdx, s.mkIdx, s.coverage = saved[0].(bool), saved[1].(mirror.Changes), saved[2].(uint64), saved[3].(uint64), saved[4].([mirror.CoverageShards][]string)
	s.mu.Unlock()
	return snap, err
}

func (s *fakeStore) Load(ctx context.Context) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return Snapshot{}, s.loadErr
	}
	snap := Snapshot{State: NewState()}
	for name, n := range s.nodes {
		if o := s.enc.Owner(n.Meta); o != mirror.Mine {
			snap.State.Foreign[name] = o
			continue
		}
		snap.State.Nodes[name] = mirror.DecodeNode(name, n.Address, emptyMap(n.TaggedAddresses), emptyMap(n.Meta))
		for _, svc := range s.services[name] {
			snap.State.PutService(mirror.DecodeCatalogService(catalogService(n, svc)))
		}
	}
	s.loadRecordsLocked(&snap)
	return snap, nil
}

// loadRecordsLocked reads the marker, feed and coverage and resets the
// chain to them, as syncer/consul's Load does. mu held.
func (s *fakeStore) loadRecordsLocked(snap *Snapshot) {
	s.loaded, s.changes, s.chIdx, s.mkIdx = true, mirror.Changes{}, 0, 0
	if kv, ok := s.kv[mirror.MarkerKey(s.kvPrefix, s.gateway())]; ok {
		s.mkIdx = kv.ModifyIndex
		if m, err := mirror.DecodeMarker(kv.Value); err == nil && m.Gateway == s.gateway() {
			snap.Marker = &m
		}
	}
	if kv, ok := s.kv[mirror.ChangesKey(s.kvPrefix, s.gateway())]; ok {
		s.chIdx = kv.ModifyIndex
		if c, err := mirror.DecodeChanges(kv.Value); err == nil {
			s.changes = c
		}
	}
	s.coverage = [mirror.CoverageShards][]string{}
	for key, kv := range s.kv {
		if !strings.HasPrefix(key, mirror.CoveragePrefix(s.kvPrefix, s.gateway())) {
			continue
		}
		if snap.Coverage == nil {
			snap.Coverage = map[string]bool{}
		}
		if sh, err := mirror.DecodeCoverageShard(kv.Value); err == nil && key == mirror.CoverageKey(s.kvPrefix, s.gateway(), sh.Shard) {
			s.coverage[sh.Shard] = sh.Services
			for _, n := range sh.Services {
				snap.Coverage[n] = true
			}
		}
	}
}

func (s *fakeStore) LoadServices(ctx context.Context, services []string) (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return Snapshot{}, s.loadErr
	}
	snap := Snapshot{State: NewState()}
	for name, n := range s.nodes {
		for _, svc := range s.services[name] {
			if !slices.Contains(services, svc.Service) {
				continue
			}
			if o := s.enc.Owner(n.Meta); o != mirror.Mine {
				snap.State.Foreign[name] = o
				continue
			}
			snap.State.Nodes[name] = mirror.DecodeNode(name, n.Address, emptyMap(n.TaggedAddresses), emptyMap(n.Meta))
			snap.State.PutService(mirror.DecodeCatalogService(catalogService(n, svc)))
		}
	}
	return snap, nil
}

// catalogService is an instance as Consul's catalog hands it back: empty
// collections as empty, not nil (the decoder must make them canonical).
func catalogService(n api.Node, s api.AgentService) *api.CatalogService {
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	return &api.CatalogService{Node: n.Node, Address: n.Address, TaggedAddresses: emptyMap(n.TaggedAddresses), NodeMeta: emptyMap(n.Meta),
		ServiceID: s.ID, ServiceName: s.Service, ServiceTags: tags, ServiceMeta: emptyMap(s.Meta), ServiceAddress: s.Address,
		ServicePort: s.Port, ServiceTaggedAddresses: s.TaggedAddresses, ServiceEnableTagOverride: s.EnableTagOverride,
		ServiceWeights: api.Weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning}}
}

func emptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (s *fakeStore) Commit(ctx context.Context, w Write) (Committed, error) {
	s.mu.Lock()
	s.commits++
	n, hook := s.commits, s.beforeCommit
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		return Committed{}, fmt.Errorf("%w: write chain unknown: reload first", ErrConflict)
	}
	ops := s.planOps(w.Plan)
	s.ops = append(s.ops, ops...)
	if s.commitErr != nil {
		s.loaded = false
		return Committed{}, fmt.Errorf("txn to dedicated cluster: %w", s.commitErr)
	}
	if s.fencedLocked() {
		s.loaded = false
		return Committed{}, &FencedError{Session: s.fence.Session}
	}
	if err := s.checkRecordsLocked(w); err != nil {
		s.loaded = false
		return Committed{}, err
	}
	c := Committed{Nodes: map[string]uint64{}}
	before := s.serviceViewLocked()
	s.index++
	c.Rejected = s.applyOpsLocked(ops, &c)
	s.writeRecordsLocked(w, before)
	return c, nil
}

func (s *fakeStore) planOps(p Plan) []fakeOp {
	var out []fakeOp
	for _, n := range p.NodeSets {
		verb := "node_set"
		if n.Create {
			verb = "node_create"
		}
		out = append(out, fakeOp{Verb: verb, Node: n.Node.Name, node: s.enc.NodeToAPI(&n.Node)})
	}
	for i := range p.ServiceSets {
		svc := &p.ServiceSets[i]
		out = append(out, fakeOp{Verb: "service_set", Node: svc.Node, Service: svc.Name, ID: svc.ID, svc: s.enc.ServiceToAPI(svc)})
	}
	for _, d := range p.ServiceDeletes {
		out = append(out, fakeOp{Verb: "service_delete", Node: d.Node, Service: d.Name, ID: d.ID})
	}
	for _, n := range p.NodeDeletes {
		out = append(out, fakeOp{Verb: "node_delete", Node: n})
	}
	return out
}

// applyOpsLocked applies ops in order, returning the ones refused (each
// service on a refused node refused with it). mu held.
func (s *fakeStore) applyOpsLocked(ops []fakeOp, c *Committed) []Rejected {
	var rejected []Rejected
	badNode := map[string]bool{}
	for _, o := range ops {
		reason := ""
		if s.reject != nil {
			reason = s.reject(o)
		}
		kind := KindService
		if strings.HasPrefix(o.Verb, "node") {
			kind = KindNode
		}
		switch {
		case reason != "":
		case kind == KindService && badNode[o.Node]:
			reason = "its node was rejected"
		case o.Verb == "node_create" && s.hasNode(o.Node):
			reason = "failed to set node: index is stale"
		case o.Verb == "service_set" && !s.hasNode(o.Node):
			reason = "Missing node registration"
		}
		if reason != "" {
			if kind == KindNode {
				badNode[o.Node] = true
			}
			rejected = append(rejected, Rejected{Kind: kind, Node: o.Node, Service: o.Service, ID: o.ID, Reason: reason})
			continue
		}
		s.applyLocked(o, c)
		c.Ops++
	}
	return rejected
}

func (s *fakeStore) hasNode(name string) bool { _, ok := s.nodes[name]; return ok }

func (s *fakeStore) applyLocked(o fakeOp, c *Committed) {
	switch o.Verb {
	case "node_set", "node_create":
		n := o.node
		n.ModifyIndex = s.index
		s.nodes[o.Node] = n
		c.Nodes[o.Node] = s.index
	case "service_set":
		if s.services[o.Node] == nil {
			s.services[o.Node] = map[string]api.AgentService{}
		}
		s.services[o.Node][o.ID] = o.svc
	case "service_delete":
		delete(s.services[o.Node], o.ID)
	case "node_delete":
		delete(s.nodes, o.Node)
		delete(s.services, o.Node)
	}
}

func (s *fakeStore) putKV(key string, v []byte) uint64 {
	s.index++
	s.kv[key] = fakeKV{Value: v, ModifyIndex: s.index, Session: s.kv[key].Session}
	return s.index
}

func (s *fakeStore) Heartbeat(ctx context.Context, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeats++
	if s.heartbeatErr != nil {
		return false, s.heartbeatErr
	}
	key := mirror.MarkerKey(s.kvPrefix, s.gateway())
	kv, ok := s.kv[key]
	if !ok {
		return false, nil
	}
	m, err := mirror.DecodeMarker(kv.Value)
	if err != nil || m.Gateway != s.gateway() {
		return false, nil
	}
	if s.fencedLocked() {
		return false, &FencedError{Session: s.fence.Session}
	}
	m.CheckedAt = now
	s.mkIdx = s.putKV(key, m.Encode())
	return true, nil
}

func (s *fakeStore) EnsureLocalTemplate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.templateErr != nil {
		return s.templateErr
	}
	if !s.tmplOK { // written only when missing, as syncer/consul does
		s.localTmpl++
	}
	s.tmplOK = true
	return nil
}
