package gateway

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/mirror"
)

const (
	fakeGateway = "edge"
	fakeDC      = "dc1"
)

// fakeMirror writes a dedicated cluster into a fakeConsul the way the
// controller does, through package mirror: entries from mirror.Encoder,
// the change feed, the coverage shards and the marker.
type fakeMirror struct {
	f       *fakeConsul
	enc     mirror.Encoder
	mu      sync.Mutex
	changes mirror.Changes
	covered map[string]bool
}

func newFakeMirror(f *fakeConsul) *fakeMirror {
	return &fakeMirror{f: f, enc: mirror.Encoder{Gateway: fakeGateway, NodePrefix: mirror.DefaultNodePrefix}, covered: map[string]bool{}}
}

// set makes service's mirrored instances one per port (none: an empty,
// still covered service), covers it, records the change and, with marker,
// vouches for the mirror.
func (m *fakeMirror) set(t testing.TB, service string, ports []int, marker bool) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.f.setService(service, m.entries(t, service, ports))
	coverage := !m.covered[service]
	m.covered[service] = true
	m.commit(service, coverage, marker)
}

// uncover removes service from the mirror and the coverage.
func (m *fakeMirror) uncover(t testing.TB, service string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.f.setService(service, nil)
	delete(m.covered, service)
	m.commit(service, true, false)
}

func (m *fakeMirror) commit(service string, coverage, marker bool) {
	m.changes = m.changes.Next(fakeGateway, []string{service}, coverage)
	if coverage {
		shards := make([][]string, mirror.CoverageShards)
		for s := range m.covered {
			shards[mirror.ShardOf(s)] = append(shards[mirror.ShardOf(s)], s)
		}
		for i, names := range shards {
			slices.Sort(names)
			sh := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: fakeGateway, Shard: i, Seq: m.changes.Seq, Services: names}
			m.f.putKV(mirror.CoverageKey(mirror.DefaultKVPrefix, fakeGateway, i), sh.Encode())
		}
	}
	m.f.putKV(mirror.ChangesKey(mirror.DefaultKVPrefix, fakeGateway), m.changes.Encode())
	if marker {
		m.heartbeat(time.Now())
	}
}

// heartbeat writes a marker vouched for at "at".
func (m *fakeMirror) heartbeat(at time.Time) {
	mk := mirror.Marker{Version: mirror.MarkerVersion, Gateway: fakeGateway, Generation: 1, SyncedAt: at.UTC(), CheckedAt: at.UTC()}
	m.f.putKV(mirror.MarkerKey(mirror.DefaultKVPrefix, fakeGateway), mk.Encode())
}

func (m *fakeMirror) entries(t testing.TB, service string, ports []int) []*api.ServiceEntry {
	t.Helper()
	var out []*api.ServiceEntry
	for _, port := range ports {
		node := service + "-" + strconv.Itoa(port)
		ep, err := mirror.EndpointFromAPI(&api.ServiceEntry{
			Node:    &api.Node{Node: node, Address: "10.0.0.1", Datacenter: fakeDC},
			Service: &api.AgentService{ID: node, Service: service, Port: port},
		}, fakeDC)
		if err != nil {
			t.Fatal(err)
		}
		n, s, err := m.enc.Encode(&ep, 0)
		if err != nil {
			t.Fatal(err)
		}
		an, as := m.enc.NodeToAPI(&n), m.enc.ServiceToAPI(&s)
		out = append(out, &api.ServiceEntry{Node: &an, Service: &as})
	}
	return out
}

// publicEntries is a prepared-query answer with one instance per port.
func publicEntries(service string, ports ...int) []api.ServiceEntry {
	var out []api.ServiceEntry
	for _, port := range ports {
		node := service + "-" + strconv.Itoa(port)
		out = append(out, api.ServiceEntry{
			Node:    &api.Node{Node: node, Address: "10.0.0.2", Datacenter: fakeDC},
			Service: &api.AgentService{ID: node, Service: service, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}},
		})
	}
	return out
}

// fakeEnv is a resolver between a fake dedicated cluster and a fake public
// cluster, with fast timings.
type fakeEnv struct {
	local, public *fakeConsul
	mirror        *fakeMirror
	reg           *prometheus.Registry
}

func newFakeEnv(t testing.TB) *fakeEnv {
	local, public := newFakeConsul(t), newFakeConsul(t)
	return &fakeEnv{local: local, public: public, mirror: newFakeMirror(local), reg: prometheus.NewRegistry()}
}

func (e *fakeEnv) options() Options {
	return Options{
		Local: e.local.client(), Public: e.public.client(), SourceDatacenter: fakeDC, Gateway: fakeGateway,
		LocalBreaker:  BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: 200 * time.Millisecond},
		PublicBreaker: BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: 200 * time.Millisecond},
		BlockingWait:  2 * time.Second, LookupTimeout: 500 * time.Millisecond, PublicTimeout: 500 * time.Millisecond,
		PublicPollInterval: 200 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		Logger: hclog.NewNullLogger(), Registerer: e.reg,
	}
}

// run starts a resolver and stops it when the test ends.
func (e *fakeEnv) run(t testing.TB, opts Options) *Resolver {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}
