package ha

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// env is a set of dedicated clusters (one real Consul server per gateway)
// shared by the tests of one parent test; each test keeps to a KV prefix of
// its own, so they run in parallel without seeing each other.
type env struct {
	servers map[string]*harness.Server // by gateway
	gws     []Gateway                  // Client unset: each replica gets its own
	admin   map[string]*api.Client     // direct clients for the test's own reads
}

func startEnv(t testing.TB, gws []Gateway) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("real Consul: skipped under -short")
	}
	e := &env{servers: map[string]*harness.Server{}, gws: gws, admin: map[string]*api.Client{}}
	for _, g := range gws {
		s := harness.StartServer(t, "dedicated-"+g.Name)
		e.servers[g.Name] = s
		e.admin[g.Name] = s.Client(t)
	}
	return e
}

// replica is one coordinator run in-process, optionally behind one proxy
// per cluster (so a test can cut it from a cluster without stopping it).
type replica struct {
	name    string
	c       *Coordinator
	reg     *prometheus.Registry
	proxies map[string]*harness.Proxy // by gateway; empty when direct
	log     *syncBuffer
	cancel  context.CancelFunc
	done    chan struct{}
}

type replicaConfig struct {
	prefix  string
	proxied bool
	mod     func(*Options)
}

func (e *env) startReplica(t testing.TB, name string, rc replicaConfig) *replica {
	t.Helper()
	r := &replica{name: name, reg: prometheus.NewRegistry(), proxies: map[string]*harness.Proxy{}, log: &syncBuffer{}, done: make(chan struct{})}
	opts := Options{
		Replica:        name,
		Address:        name + ".admin:9310",
		ConfigHash:     "cfg-1",
		SessionTTL:     MinSessionTTL,
		LockDelay:      0,
		HandoverSettle: time.Second,
		KVPrefix:       rc.prefix,
		Registerer:     r.reg,
		Logger:         hclog.New(&hclog.LoggerOptions{Output: r.log, Level: hclog.Debug, Name: name}),
	}
	for _, g := range e.gws {
		addr := e.servers[g.Name].HTTPAddr()
		if rc.proxied {
			p := harness.NewProxy(t, addr)
			r.proxies[g.Name] = p
			addr = p.Addr()
		}
		client, err := config.Cluster{Address: addr, Scheme: "http"}.NewClient(config.ClientOptions{})
		if err != nil {
			t.Fatalf("client for %s: %v", addr, err)
		}
		opts.Gateways = append(opts.Gateways, Gateway{Name: g.Name, SourceDC: g.SourceDC, Client: client})
	}
	if rc.mod != nil {
		rc.mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("new coordinator %s: %v", name, err)
	}
	r.c = c
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("replica %s: run: %v", name, err)
		}
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("log of replica %s:\n%s", name, r.log.String())
		}
	})
	return r
}

// stop cancels the coordinator and waits for its shutdown (bounded by the
// coordinator's own shutdown timeout).
func (r *replica) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Errorf("replica %s did not stop", r.name)
	}
}

// setDown cuts the replica from every cluster (a process that died or a
// node that vanished, as the clusters see it), or reconnects it.
func (r *replica) setDown(down bool) {
	for _, p := range r.proxies {
		p.SetDown(down)
	}
}

func (r *replica) leases() map[string]*Lease {
	out := map[string]*Lease{}
	for _, o := range r.c.Owners() {
		if l, ok := r.c.Lease(o.Gateway); ok {
			out[o.Gateway] = l
		}
	}
	return out
}

func (r *replica) transitions(gateway, event string) float64 {
	return testutil.ToFloat64(r.c.m.transitions.WithLabelValues(gateway, event))
}

// lockHolder is a lock key as read directly from a cluster.
type lockHolder struct {
	session string
	holder  mirror.Holder
}

// holders reads every gateway's lock from its cluster (consistent reads).
func (e *env) holders(prefix string) (map[string]lockHolder, error) {
	out := map[string]lockHolder{}
	for _, g := range e.gws {
		ctx, cancel := context.WithTimeout(context.Background(), harness.CallTimeout)
		pair, _, err := e.admin[g.Name].KV().Get(mirror.LockKey(prefix, g.Name), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read lock of %s: %w", g.Name, err)
		}
		if pair == nil || pair.Session == "" {
			continue
		}
		h, err := mirror.DecodeHolder(pair.Value)
		if err != nil {
			return nil, fmt.Errorf("lock of %s: %w", g.Name, err)
		}
		out[g.Name] = lockHolder{session: pair.Session, holder: h}
	}
	return out, nil
}

// owners checks that every gateway has exactly one owner: its lock is held
// (read from Consul), exactly one replica has a lease on it, and that lease
// carries the holding session. It returns the owner replica by gateway.
func (e *env) owners(prefix string, rs ...*replica) (map[string]string, error) {
	held, err := e.holders(prefix)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range e.gws {
		h, ok := held[g.Name]
		if !ok {
			return nil, fmt.Errorf("gateway %s: lock not held", g.Name)
		}
		var with []string
		for _, r := range rs {
			if l, ok := r.c.Lease(g.Name); ok {
				with = append(with, r.name)
				if l.Session != h.session {
					return nil, fmt.Errorf("gateway %s: replica %s has a lease on session %s, the lock is held by %s", g.Name, r.name, l.Session, h.session)
				}
			}
		}
		if len(with) != 1 {
			return nil, fmt.Errorf("gateway %s: leases held by %v, want exactly one", g.Name, with)
		}
		if h.holder.Replica != with[0] {
			return nil, fmt.Errorf("gateway %s: lock value names %s, lease held by %s", g.Name, h.holder.Replica, with[0])
		}
		out[g.Name] = with[0]
	}
	return out, nil
}

// noDoubleLeases fails the test if two replicas ever hold a live lease on
// the same gateway, sampled every harness.PollInterval until stop is closed.
func noDoubleLeases(t testing.TB, stop <-chan struct{}, rs ...*replica) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(harness.PollInterval)
		defer tick.Stop()
		for {
			seen := map[string]string{}
			for _, r := range rs {
				for g := range r.leases() {
					if other, dup := seen[g]; dup {
						t.Errorf("gateway %s leased by both %s and %s", g, other, r.name)
						return
					}
					seen[g] = r.name
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return &wg
}

func testPrefix(t testing.TB) string {
	return "t-" + strings.NewReplacer("/", "-", " ", "-").Replace(strings.ToLower(t.Name())) + "/"
}

// syncBuffer collects a replica's log; printed when its test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
