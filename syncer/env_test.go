package syncer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// fakeClock moves forward by step on every reading, so every answer's
// start time is distinct and ordered as the calls were, and jumps when a
// test advances it.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a controller with one gateway, edge (source dc1, failing over to
// dc2), on a fake public federation (dc1, dc2) and a fake dedicated
// cluster.
type env struct {
	t     *testing.T
	cfg   *config.Config
	clock *fakeClock
	pub   *fakePublic
	st    *fakeStore // the first gateway's
	ctl   *Controller
	// stores are the dedicated clusters by gateway.
	stores map[string]*fakeStore
	gw     *gatewaySyncer
	m      *Metrics
}

const gw = "edge"

// testConfig is a valid configuration for env; the delete guard's minimum
// is high so that only the guard tests meet it.
func testConfig() *config.Config {
	return &config.Config{
		Public:   config.Public{MaxInFlightPerDC: 2, MaxStaleness: 2 * time.Second},
		Query:    config.Query{Prefix: mirror.DefaultQueryPrefix, OnlyPassing: true, Datacenters: []string{"dc2"}},
		Safety:   config.Safety{MaxDeleteFraction: 0.5, DeleteGuardMin: 1000},
		Mirror:   config.Mirror{NodePrefix: mirror.DefaultNodePrefix, KVPrefix: mirror.DefaultKVPrefix, MarkerInterval: time.Minute, MaxSyncAge: time.Hour},
		Gateways: []config.Gateway{{Name: gw, SourceDatacenter: "dc1", Services: config.Services{Include: []string{"*"}, Exclude: []string{"consul"}}}},
	}
}

func newEnv(t *testing.T, mutate ...func(*config.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, f := range mutate {
		f(cfg)
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), step: time.Millisecond}
	pub := newFakePublic(clock.Now, "dc1", "dc2")
	pub.targets["dc1"], pub.targets["dc2"] = []string{"dc2"}, []string{"dc1"}
	e := &env{t: t, cfg: cfg, clock: clock, pub: pub, stores: map[string]*fakeStore{}}
	for _, g := range cfg.Gateways {
		e.stores[g.Name] = newFakeStore(g.Name)
	}
	e.st = e.stores[cfg.Gateways[0].Name]
	e.restart(nil)
	t.Cleanup(func() {
		for name, s := range e.stores {
			if p := s.contractProblems(); len(p) > 0 {
				t.Errorf("gateway %s: the writes broke the mirror contract:\n%s", name, strings.Join(p, "\n"))
			}
		}
	})
	return e
}

// restart replaces the controller with a new one (a new process) on the
// same public federation and dedicated clusters, with det as its change
// feed (nil: none).
func (e *env) restart(det Detector) {
	e.t.Helper()
	e.restartWith(func(o *Options) { o.Detector = det })
}

// restartWith is restart with the options mutate sets (leases, ...).
func (e *env) restartWith(mutate func(*Options)) {
	e.t.Helper()
	stores := map[string]Store{}
	for name, s := range e.stores {
		stores[name] = s
	}
	o := Options{Registerer: prometheus.NewRegistry(), Now: e.clock.Now, Public: e.pub, Stores: stores, Replica: "r1"}
	mutate(&o)
	ctl, err := New(e.cfg, o)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.ctl, e.gw, e.m = ctl, ctl.gateways[e.cfg.Gateways[0].Name], ctl.metrics
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// sync runs one reconcile of edge.
func (e *env) sync(req Request) (Result, error) {
	e.t.Helper()
	if req.Gateway == "" {
		req.Gateway = gw
	}
	return e.ctl.Sync(e.ctx(), req)
}

// full runs a full reconcile that must not fail.
func (e *env) full() Result {
	e.t.Helper()
	res, err := e.sync(Request{})
	if err != nil {
		e.t.Fatalf("full reconcile: %v (result %+v)", err, res)
	}
	return res
}

// counter reads a metric series.
func counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// --- what the fake store holds ---

// held lists service's owned instances as "node/id:port", sorted.
func (s *fakeStore) held(service string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for node, svcs := range s.services {
		if s.enc.Owner(s.nodes[node].Meta) != mirror.Mine {
			continue
		}
		for _, svc := range svcs {
			if svc.Service == service {
				out = append(out, fmt.Sprintf("%s/%s:%d", node, svc.ID, svc.Port))
			}
		}
	}
	slices.Sort(out)
	return out
}

// instance returns an owned instance as Consul stores it.
func (s *fakeStore) instance(node, id string) (api.AgentService, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc, ok := s.services[node][id]
	return svc, ok
}

// node returns a node as Consul stores it.
func (s *fakeStore) node(name string) (api.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[name]
	return n, ok
}

// marker decodes the stored marker (nil: none).
func (s *fakeStore) marker(t *testing.T) *mirror.Marker {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.kv[mirror.MarkerKey(s.kvPrefix, s.gateway())]
	if !ok {
		return nil
	}
	m, err := mirror.DecodeMarker(kv.Value)
	if err != nil {
		t.Fatalf("stored marker: %v", err)
	}
	return &m
}

// deleteMarker removes the marker (an operator, or a lost write).
func (s *fakeStore) deleteMarker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.kv, mirror.MarkerKey(s.kvPrefix, s.gateway()))
}

// covered decodes the stored coverage (nil: no record).
func (s *fakeStore) covered(t *testing.T) []string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for key, kv := range s.kv {
		if !strings.HasPrefix(key, mirror.CoveragePrefix(s.kvPrefix, s.gateway())) {
			continue
		}
		sh, err := mirror.DecodeCoverageShard(kv.Value)
		if err != nil {
			t.Fatalf("coverage shard %s: %v", key, err)
		}
		out = append(out, sh.Services...)
	}
	slices.Sort(out)
	return out
}

// feed decodes the stored change feed.
func (s *fakeStore) feed(t *testing.T) mirror.Changes {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	kv, ok := s.kv[mirror.ChangesKey(s.kvPrefix, s.gateway())]
	if !ok {
		return mirror.Changes{}
	}
	c, err := mirror.DecodeChanges(kv.Value)
	if err != nil {
		t.Fatalf("stored change feed: %v", err)
	}
	return c
}

// stats returns the number of commits, catalog ops received, heartbeats
// and local template writes so far.
func (s *fakeStore) stats() (commits, ops, heartbeats, templates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits, len(s.ops), s.heartbeats, s.localTmpl
}

// opsOn lists the catalog ops the store received for node.
func (s *fakeStore) opsOn(node string) []fakeOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fakeOp
	for _, o := range s.ops {
		if o.Node == node {
			out = append(out, o)
		}
	}
	return out
}

func (s *fakeStore) contractProblems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// --- assertions ---

func wantHeld(t *testing.T, s *fakeStore, service string, want ...string) {
	t.Helper()
	if got := s.held(service); !slices.Equal(got, want) {
		t.Errorf("store holds %s = %q, want %q", service, got, want)
	}
}

// waitHeld waits until the store holds exactly want for service.
func waitHeld(t *testing.T, s *fakeStore, service string, want ...string) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, func() error {
		if got := s.held(service); !slices.Equal(got, want) {
			return fmt.Errorf("store holds %s = %q, want %q", service, got, want)
		}
		return nil
	})
}

// runEvents runs the gateway's event worker until the test ends, or
// until stop (which waits for it to return) is called.
func (e *env) runEvents() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); e.ctl.eventLoop(ctx, e.gw) }()
	stop = func() { cancel(); <-stopped }
	e.t.Cleanup(stop)
	return stop
}

func wantKept(t *testing.T, res Result, want map[string]string) {
	t.Helper()
	if len(res.Kept) != len(want) {
		t.Errorf("kept %v, want %d services: %v", res.Kept, len(want), slices.Sorted(maps.Keys(want)))
	}
	for name, frag := range want {
		if got, ok := res.Kept[name]; !ok || !strings.Contains(got, frag) {
			t.Errorf("kept[%s] = %q (present %v), want it to contain %q", name, got, ok, frag)
		}
	}
}

// wantProblems checks that res reports exactly one problem per fragment,
// in any order (answers are shuffled).
func wantProblems(t *testing.T, res Result, frags ...string) {
	t.Helper()
	if len(res.Problems) != len(frags) {
		t.Errorf("problems %q, want %d: %q", res.Problems, len(frags), frags)
		return
	}
	used := make([]bool, len(res.Problems))
	for _, f := range frags {
		i := slices.IndexFunc(res.Problems, func(p string) bool { return strings.Contains(p, f) })
		for i >= 0 && used[i] {
			j := slices.IndexFunc(res.Problems[i+1:], func(p string) bool { return strings.Contains(p, f) })
			if j < 0 {
				i = -1
				break
			}
			i += j + 1
		}
		if i < 0 {
			t.Errorf("no problem contains %q: %q", f, res.Problems)
			continue
		}
		used[i] = true
	}
}

func wantCounts(t *testing.T, res Result, adds, updates, deletes int) {
	t.Helper()
	if res.Adds != adds || res.Updates != updates || res.Deletes != deletes {
		t.Errorf("adds/updates/deletes = %d/%d/%d, want %d/%d/%d; changes %q", res.Adds, res.Updates, res.Deletes, adds, updates, deletes, changeStrings(res.Changes))
	}
}

func changeStrings(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %s/%s %s", c.Op, c.Kind, c.Node, c.ID, c.Reason))
	}
	return out
}

// mn is a mirrored node name for edge.
func mn(dc, node string) string { return mirror.NodeName(mirror.DefaultNodePrefix, dc, node) }
