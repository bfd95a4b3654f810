// Package admintest runs a real sync controller with its admin API for
// tests of the admin API and the ops CLI: a WAN-federated public Consul
// (real servers from test/harness), one dedicated Consul per gateway, the
// controller's Run loop and the admin server on a free loopback port.
// Only tests import it.
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

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

// ReadyTimeout bounds the wait for the controller's first full syncs.
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
	// Address is the admin listen address (default "127.0.0.1:0").
	Address string
	// Admin adjusts the admin server's options (bounds, timeouts).
	Admin func(*admin.Options)
}

// Env is a running controller and its admin API.
type Env struct {
	Controller *syncer.Controller
	Registry   *prometheus.Registry
	// Dedicated maps a gateway to its dedicated cluster.
	Dedicated map[string]*harness.Server
	// Addr is the admin API's bound address (host:port); URL is its base URL.
	Addr, URL string
	Token     string
	Config    *config.Config
}

// Start starts the dedicated servers, the controller (schedule "@every 30m":
// one full sync at start, later ones only when a test asks) and the admin
// server, and waits until every gateway has completed its first full sync.
// Everything stops through t.Cleanup.
func Start(t *testing.T, s Setup) *Env {
	t.Helper()
	env := &Env{Dedicated: map[string]*harness.Server{}, Token: s.Token}
	for _, g := range s.Gateways {
		env.Dedicated[g] = harness.StartServer(t, g)
	}
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
	env.Config = cfg
	env.Registry = prometheus.NewRegistry()
	env.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log := hclog.New(&hclog.LoggerOptions{Name: "gwsync", Level: hclog.Warn, Output: testWriter{t}})
	sopts, err := consul.Setup(cfg, syncer.Options{Logger: log, Registerer: env.Registry, Replica: "admintest"})
	if err != nil {
		t.Fatalf("admintest: controller: %v", err)
	}
	// No change feed: a test decides when a sync runs (a pending change
	// stays pending until a resync or diff looks at it).
	sopts.Detector = nil
	env.Controller, err = syncer.New(cfg, sopts)
	if err != nil {
		t.Fatalf("admintest: controller: %v", err)
	}
	opts := admin.Options{Controller: env.Controller, Address: or(s.Address, "127.0.0.1:0"), Token: s.Token,
		Gatherer: env.Registry, Logger: log.Named("admin")}
	if s.Admin != nil {
		s.Admin(&opts)
	}
	srv := admin.New(opts)
	env.Addr = RunServer(t, srv)
	env.URL = "http://" + env.Addr

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.Controller.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admintest: controller run: %v", err)
		}
	})
	harness.Eventually(t, ReadyTimeout, func() error {
		if !env.Controller.Ready() {
			return fmt.Errorf("controller not ready: %+v", env.Controller.Status())
		}
		return nil
	})
	return env
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

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
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
