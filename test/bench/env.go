package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

// callTimeout bounds the harness's own Consul calls.
const callTimeout = 30 * time.Second

// Env is the shared setup of every scenario: a three-DC public Consul,
// with a byte meter and a counting proxy in front of dc1 (the public
// address every gwsync component and old-design node uses: requests for
// dc2 and dc3 go through dc1 with ?dc=), the base catalog of scenarios 1,
// 2, 3 and 6, and the dedicated clusters of gateways gw-a (source dc1) and
// gw-b (source dc2). Every Consul runs with its default limits.
type Env struct {
	TB    testing.TB
	Sizes Sizes
	Fed   *harness.Federation
	DCs   []string
	Meter *meter
	Proxy *harness.Proxy
	Base  *catalog
	// GwA and GwB are the dedicated clusters of gw-a and gw-b.
	GwA, GwB *harness.Server
	// Charts collects every scenario's charts.
	Charts *Charts
}

// NewEnv starts the public federation and the two dedicated clusters and
// registers the base catalog.
func NewEnv(tb testing.TB, sz Sizes) *Env {
	tb.Helper()
	e := &Env{TB: tb, Sizes: sz, DCs: []string{"dc1", "dc2", "dc3"}, Charts: &Charts{}}
	e.Fed = harness.StartFederation(tb, e.DCs...)
	e.GwA = harness.StartServer(tb, "gw-a")
	e.GwB = harness.StartServer(tb, "gw-b")
	e.Meter = newMeter(tb, e.Fed.Server("dc1").HTTPAddr())
	e.Proxy = harness.NewProxy(tb, e.Meter.Addr())
	e.Base = newCatalog("svc-", sz.Services, sz.InstancesPerService, e.DCs)
	e.Base.register(tb, e.Fed)
	return e
}

// gwConf is one gateway in a generated controller configuration: its
// dedicated cluster is srv, or (srv nil) address.
type gwConf struct {
	name, dc string
	srv      *harness.Server
	address  string
}

func (g gwConf) addr() string {
	if g.srv != nil {
		return g.srv.HTTPAddr()
	}
	return g.address
}

// ctrlConf renders a controller configuration. Zero fields keep gwsync's
// defaults, apart from the failover list every scenario uses.
type ctrlConf struct {
	public   string
	include  []string
	schedule string // "" = the default (@every 5m)
	noEvents bool   // events { enabled = false }: full reconciles only
	admin    string
	gateways []gwConf
	timeout  string
	// manual: the schedule never fires within a run (tests call Sync).
	manual    bool
	markerInt string
}

func (c ctrlConf) hcl() string {
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n", c.public)
	if c.timeout != "" {
		fmt.Fprintf(&b, "  timeout = %q\n", c.timeout)
	}
	b.WriteString("}\nquery {\n  failover {\n    nearest_n = 3\n    datacenters = [\"dc1\", \"dc2\", \"dc3\"]\n  }\n}\n")
	q := make([]string, len(c.include))
	for i, s := range c.include {
		q[i] = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(&b, "services {\n  include = [%s]\n}\n", strings.Join(q, ", "))
	b.WriteString("mirror {\n")
	if c.markerInt != "" {
		fmt.Fprintf(&b, "  marker_interval = %q\n", c.markerInt)
	}
	schedule := c.schedule
	if c.manual {
		// Cycles are driven by the scenario; vouching must outlive them.
		schedule = "@every 24h"
		b.WriteString("  max_sync_age = \"72h\"\n")
	}
	b.WriteString("}\n")
	if c.noEvents {
		b.WriteString("events {\n  enabled = false\n}\n")
	}
	fmt.Fprintf(&b, "admin {\n  address = %q\n}\n", or(c.admin, "127.0.0.1:0"))
	for _, g := range c.gateways {
		fmt.Fprintf(&b, "gateway %q {\n  source_datacenter = %q\n", g.name, g.dc)
		if schedule != "" {
			fmt.Fprintf(&b, "  schedule = %q\n", schedule)
		}
		fmt.Fprintf(&b, "  dedicated {\n    address = %q\n  }\n}\n", g.addr())
	}
	return b.String()
}

func (c ctrlConf) write(tb testing.TB) string {
	tb.Helper()
	return writeFile(tb, "gwsync.hcl", c.hcl())
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// inProcess is a controller running in the bench process, built the way
// `gwsync run` builds it (syncer/consul.Setup), as the only writer of its
// gateways (no locks: HA has its own scenario).
type inProcess struct {
	*syncer.Controller
	reg  *prometheus.Registry
	stop func()
}

// controller builds an in-process controller; its loops (schedule, event
// path, heartbeats) run only after start.
func controller(tb testing.TB, c ctrlConf) *inProcess {
	tb.Helper()
	cfg, err := config.Load(c.write(tb), nil)
	if err != nil {
		tb.Fatalf("bench: config: %v", err)
	}
	reg := prometheus.NewRegistry()
	opts, err := consul.Setup(cfg, syncer.Options{Logger: quietLogger(tb), Registerer: reg, Replica: "bench"})
	if err != nil {
		tb.Fatalf("bench: controller: %v", err)
	}
	opts.Leases = nil
	ctrl, err := syncer.New(cfg, opts)
	if err != nil {
		tb.Fatalf("bench: controller: %v", err)
	}
	return &inProcess{Controller: ctrl, reg: reg, stop: func() {}}
}

// start runs the controller's loops until stop (or the test's end) and
// waits for every gateway's first complete full sync.
func (p *inProcess) start(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = p.Run(ctx) })
	var once sync.Once
	p.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	tb.Cleanup(p.stop)
	harness.Eventually(tb, 5*time.Minute, func() error {
		for _, g := range p.Status().Gateways {
			if !g.Synced {
				return fmt.Errorf("gateway %s: no complete full sync yet", g.Name)
			}
		}
		return nil
	})
}

// syncUntilComplete runs full reconciles of gateway until one is complete.
func syncUntilComplete(tb testing.TB, c *inProcess, gw string) syncer.Result {
	tb.Helper()
	var res syncer.Result
	harness.Eventually(tb, 2*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var err error
		res, err = c.Sync(ctx, syncer.Request{Gateway: gw})
		if err != nil {
			return err
		}
		if !res.Complete {
			return fmt.Errorf("sync of %s incomplete: %v", gw, res.Errors)
		}
		return nil
	})
	return res
}

// quietLogger logs errors only, to the test log.
func quietLogger(tb testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Error, Output: tbWriter{tb}})
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// nodeIP is simulated gateway node k's own loopback address (127.1.x.y):
// Consul limits connections per client IP (http_max_conns_per_client,
// 200 by default), and real gateway nodes each have an address of their
// own, so each simulated node connects from its own.
func nodeIP(k int) net.IP { return net.IPv4(127, 1, byte(k/250), byte(k%250+1)) }

// client builds an API client for addr the way gwsync builds its own
// (config.Cluster.NewClient: conns connections, 0 for the default 64),
// connecting from node k's address (k < 0: the default, 127.0.0.1).
func client(tb testing.TB, addr string, k, conns int) *api.Client {
	tb.Helper()
	opts := config.ClientOptions{MaxConnsPerHost: conns}
	if k >= 0 {
		ip := nodeIP(k)
		opts.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			t, ok := rt.(*http.Transport)
			if !ok {
				return nil // NewClient reports it: the bench must not silently share one address
			}
			t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}).DialContext
			return t
		}
	}
	c, err := config.Cluster{Address: addr, Scheme: "http", Timeout: 10 * time.Second}.NewClient(opts)
	if err != nil {
		tb.Fatalf("bench: client %s: %v", addr, err)
	}
	return c
}

// runningResolver is a gateway resolver running in the background.
type runningResolver struct {
	*gateway.Resolver
	stop func()
}

// startResolver starts a resolver of gw (source dc) on simulated node k,
// reading local (a dedicated cluster or a proxy in front of one) and
// falling back to the public cluster through the counting proxy. Its
// clients are built as `gwsync gateway` builds them (64 connections).
func (e *Env) startResolver(gw, dc, local string, k int) *runningResolver {
	e.TB.Helper()
	r, err := gateway.New(gateway.Options{
		Local:            client(e.TB, local, k, 0),
		Public:           client(e.TB, e.Proxy.Addr(), k, 0),
		SourceDatacenter: dc,
		Gateway:          gw,
		Logger:           quietLogger(e.TB),
	})
	if err != nil {
		e.TB.Fatalf("bench: resolver: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.Run(ctx) })
	var once sync.Once
	rr := &runningResolver{Resolver: r, stop: func() { once.Do(func() { cancel(); wg.Wait() }) }}
	e.TB.Cleanup(rr.stop)
	return rr
}

// waitLocal waits until the resolver trusts its local cluster.
func waitLocal(tb testing.TB, r *runningResolver) {
	tb.Helper()
	harness.Eventually(tb, time.Minute, func() error {
		if st := r.Status(); !st.LocalUsable {
			return fmt.Errorf("resolver: local not usable: %s", st.LocalReason)
		}
		return nil
	})
}
