// Package admintest runs real sync controllers with their admin APIs for
// tests of the admin API and the ops CLI: a WAN-federated public Consul
// (real servers from test/harness), one dedicated Consul per gateway, one
// or more controller replicas (sharing the gateways through their locks)
// and their admin servers on free loopback ports. Fake controllers (Fake,
// FakeReplicas, FakeEvents) serve fast tests of the HTTP behaviour. Only
// tests import it.
package admintest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/freeport"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/syncer/ha"
	"github.com/gwsync/gwsync/test/harness"
)

// ReadyTimeout bounds the wait for the controllers' first full syncs
// (with replicas: until each gateway is written by its preferred replica,
// which can take a hand-over: one session TTL of settling, 10 s).
const ReadyTimeout = 60 * time.Second

// Setup describes a controller under test.
type Setup struct {
	// Public is the federation to read from; its first DC is every
	// gateway's source DC and the controller's public address.
	Public *harness.Federation
	// Gateways names the gateways; each gets its own dedicated server.
	Gateways []string
	// Include selects services (glob patterns).
	Include []string
	// Token is the admin token ("" = none).
	Token string
	// Replicas, if set, runs one controller replica per id, sharing the
	// gateways through their locks (HA). Without, one controller writes
	// every gateway, with no locks.
	Replicas []string
	// Admin adjusts the admin servers' options (bounds, timeouts).
	Admin func(*admin.Options)
}

// Env is a running controller (or replicas) and its admin API.
type Env struct {
	// Controller, Registry, Addr and URL are the first replica's.
	Controller *syncer.Controller
	Registry   *prometheus.Registry
	// Dedicated maps a gateway to its dedicated cluster.
	Dedicated map[string]*harness.Server
	// Addr is the admin API's bound address (host:port); URL is its base URL.
	Addr, URL string
	Token     string
	Config    *config.Config
	// Replicas are every replica, in Setup order (one without Setup.Replicas).
	Replicas []*Replica
}

// Replica is one running controller replica and its admin API.
type Replica struct {
	ID         string
	Controller *syncer.Controller
	Registry   *prometheus.Registry
	Addr, URL  string
}

// Start starts the dedicated servers, the controller replicas (schedule
// "@every 30m": one full sync at start, later ones only when a test asks;
// no change feed, so a change stays pending until a test syncs) and their
// admin servers, and waits until every gateway has completed its first
// full sync at the replica that writes it. Everything stops through
// t.Cleanup.
func Start(t *testing.T, s Setup) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real Consul servers: skipped with -short")
	}
	env := &Env{Dedicated: map[string]*harness.Server{}, Token: s.Token}
	for _, g := range s.Gateways {
		env.Dedicated[g] = harness.StartServer(t, g)
	}
	env.Config = loadConfig(t, s, env)
	ids := s.Replicas
	if len(ids) == 0 {
		ids = []string{"admintest"}
	}
	for _, id := range ids {
		env.Replicas = append(env.Replicas, startReplica(t, s, env.Config, id, len(s.Replicas) > 0))
	}
	first := env.Replicas[0]
	env.Controller, env.Registry, env.Addr, env.URL = first.Controller, first.Registry, first.Addr, first.URL
	harness.Eventually(t, ReadyTimeout, func() error { return settled(env, len(s.Replicas) > 0) })
	return env
}

func loadConfig(t *testing.T, s Setup, env *Env) *config.Config {
	t.Helper()
	src := s.Public.DCs()[0]
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n  timeout = \"3s\"\n}\n", s.Public.Server(src).HTTPAddr())
	fmt.Fprintf(&b, "query {\n  share_window = \"0s\"\n  failover {\n    nearest_n = 3\n  }\n}\n")
	fmt.Fprintf(&b, "services {\n  include = [%s]\n}\n", quoteList(s.Include))
	for _, g := range s.Gateways {
		fmt.Fprintf(&b, "gateway %q {\n  source_datacenter = %q\n  schedule = \"@every 30m\"\n  dedicated {\n    address = %q\n  }\n}\n",
			g, src, env.Dedicated[g].HTTPAddr())
	}
	path := filepath.Join(t.TempDir(), "gwsync.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("admintest: config: %v", err)
	}
	return cfg
}

// startReplica runs one controller and its admin server. Its admin
// address is chosen first (a reserved free port), so the replica can
// advertise it in its locks before it listens.
func startReplica(t *testing.T, s Setup, cfg *config.Config, id string, withLocks bool) *Replica {
	t.Helper()
	r := &Replica{ID: id, Registry: prometheus.NewRegistry()}
	r.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.Addr = fmt.Sprintf("127.0.0.1:%d", freeport.GetOne(t))
	r.URL = "http://" + r.Addr
	log := hclog.New(&hclog.LoggerOptions{Name: "gwsync-" + id, Level: hclog.Warn, Output: testWriter{t}})
	sopts, err := consul.Setup(cfg, syncer.Options{Logger: log, Registerer: r.Registry, Replica: id, AdvertiseAddr: r.Addr})
	if err != nil {
		t.Fatalf("admintest: controller %s: %v", id, err)
	}
	sopts.Detector = nil // a test decides when a sync runs
	if !withLocks {
		sopts.Leases = nil
	}
	if r.Controller, err = syncer.New(cfg, sopts); err != nil {
		t.Fatalf("admintest: controller %s: %v", id, err)
	}
	opts := admin.Options{Controller: r.Controller, Address: r.Addr, Token: s.Token, Gatherer: r.Registry, Logger: log.Named("admin")}
	if s.Admin != nil {
		s.Admin(&opts)
	}
	if got := RunServer(t, admin.New(opts)); got != r.Addr {
		t.Fatalf("admintest: admin server of %s listens on %s, not %s", id, got, r.Addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Controller.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admintest: controller %s run: %v", id, err)
		}
	})
	return r
}

// settled reports nil once every gateway has completed a full sync at the
// one replica that writes it; with locks, that replica must hold the lock
// and be the gateway's preferred owner in every replica's view, so
// ownership does not move while a test runs.
func settled(env *Env, withLocks bool) error {
	for _, g := range env.Config.Gateways {
		var writers []string
		for _, r := range env.Replicas {
			self := true
			if withLocks {
				o, ok := haOwner(r, g.Name)
				if !ok || !o.Held || o.Replica != o.Preferred {
					return fmt.Errorf("replica %s sees gateway %s held by %q, preferred %q", r.ID, g.Name, o.Replica, o.Preferred)
				}
				self = o.Self
			}
			if !self {
				continue
			}
			writers = append(writers, r.ID)
			if st, _ := gatewayStatus(r, g.Name); !st.Synced {
				return fmt.Errorf("gateway %s not synced yet at replica %s", g.Name, r.ID)
			}
		}
		if len(writers) != 1 {
			return fmt.Errorf("gateway %s is written by %v, want one replica", g.Name, writers)
		}
	}
	return nil
}

func haOwner(r *Replica, gateway string) (ha.GatewayOwner, bool) {
	for _, o := range r.Controller.HAStatus().Owners {
		if o.Gateway == gateway {
			return o, true
		}
	}
	return ha.GatewayOwner{}, false
}

func gatewayStatus(r *Replica, gateway string) (syncer.GatewayStatus, bool) {
	for _, gs := range r.Controller.Status().Gateways {
		if gs.Name == gateway {
			return gs, true
		}
	}
	return syncer.GatewayStatus{}, false
}

// RunServer runs srv until the test ends and returns its bound address.
func RunServer(t *testing.T, srv *admin.Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a string) { addrc <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admintest: admin server: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return a
	case err := <-done:
		t.Fatalf("admintest: admin server: %v", errors.Join(err, errors.New("stopped before listening")))
	case <-time.After(10 * time.Second):
		t.Fatal("admintest: admin server did not start listening within 10s")
	}
	return ""
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
