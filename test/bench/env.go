package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// dedicatedHCL lifts Consul's per-client connection limit (200 per source
// IP): every simulated gateway node runs on 127.0.0.1 and a resolver holds
// one blocking query per service, where real gateway nodes have IPs of
// their own.
const dedicatedHCL = `limits { http_max_conns_per_client = 15000 }`

// callTimeout bounds the harness's own Consul calls.
const callTimeout = 30 * time.Second

// Env is the shared setup of scenarios 1, 2, 3, 5 and 6: a three-DC public
// Consul holding Sizes.Services services, a counting proxy in front of dc1
// (the public address every gwsync component and old-design node uses),
// and the dedicated clusters of gateways gw-a (source dc1) and gw-b
// (source dc2).
type Env struct {
	TB       testing.TB
	Sizes    Sizes
	Fed      *harness.Federation
	DCs      []string
	Proxy    *harness.Proxy
	GwA, GwB *harness.Server
	// Services are the base services; Home maps each to its DC.
	Services []string
	Home     map[string]string
}

// NewEnv starts the public federation and the two dedicated clusters and
// registers the base services.
func NewEnv(tb testing.TB, sz Sizes) *Env {
	tb.Helper()
	e := &Env{TB: tb, Sizes: sz, DCs: []string{"dc1", "dc2", "dc3"}, Home: map[string]string{}}
	e.Fed = harness.StartFederation(tb, e.DCs...)
	e.GwA = harness.StartServer(tb, "gw-a", harness.WithHCL(dedicatedHCL))
	e.GwB = harness.StartServer(tb, "gw-b", harness.WithHCL(dedicatedHCL))
	e.Proxy = harness.NewProxy(tb, e.Fed.Server("dc1").HTTPAddr())
	var insts []instance
	for i := range sz.Services {
		name := fmt.Sprintf("svc-%03d", i)
		dc := e.DCs[i%len(e.DCs)]
		e.Services = append(e.Services, name)
		e.Home[name] = dc
		insts = append(insts, layout(name, dc, "node-", i, sz.InstancesPerService, 20)...)
	}
	e.registerBulk(insts)
	return e
}

// instance is one public service instance for bulk registration.
type instance struct {
	dc, node, addr, id, service string
	port                        int
}

// layout places n instances of service number i on nodes of dc, nodes
// shared between services as hosts are.
func layout(service, dc, nodePrefix string, i, n, nodesPerDC int) []instance {
	out := make([]instance, n)
	for j := range n {
		k := (i*n + j) % nodesPerDC
		out[j] = instance{dc: dc, node: fmt.Sprintf("%s-%s%04d", dc, nodePrefix, k), addr: fmt.Sprintf("10.%d.%d.%d", len(nodePrefix), k/250, k%250),
			id: fmt.Sprintf("%s-%d", service, j), service: service, port: 8000 + j}
	}
	return out
}

// registerBulk writes instances into their DCs' public servers through
// /v1/txn: a node's ops always share a txn (so no service op precedes its
// node), at most 128 ops a txn, eight txns in flight (txnSlots).
func (e *Env) registerBulk(insts []instance) {
	e.TB.Helper()
	byDC := map[string]map[string][]instance{}
	for _, in := range insts {
		if byDC[in.dc] == nil {
			byDC[in.dc] = map[string][]instance{}
		}
		byDC[in.dc][in.node] = append(byDC[in.dc][in.node], in)
	}
	var eg errgroup.Group
	for dc, nodes := range byDC {
		client := e.Fed.Server(dc).Client(e.TB)
		for _, batch := range nodeBatches(nodes) {
			eg.Go(func() error { return writeTxn(client, batch) })
		}
	}
	if err := eg.Wait(); err != nil {
		e.TB.Fatalf("bench: register public instances: %v", err)
	}
}

// nodeBatches packs nodes with their services into txns of at most 128 ops.
func nodeBatches(nodes map[string][]instance) []api.TxnOps {
	var out []api.TxnOps
	var cur api.TxnOps
	for node, insts := range nodes {
		if len(cur)+1+len(insts) > 128 && len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: insts[0].addr}}})
		for _, in := range insts {
			cur = append(cur, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{
				ID: in.id, Service: in.service, Port: in.port, Tags: []string{"v1"}, Meta: map[string]string{"version": "1"},
				Weights: api.AgentWeights{Passing: 1, Warning: 1}}}})
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

var txnSlots = make(chan struct{}, 8)

// writeTxn commits one txn (at most eight at a time process-wide).
func writeTxn(c *api.Client, ops api.TxnOps) error {
	txnSlots <- struct{}{}
	defer func() { <-txnSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ok, resp, _, err := c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("txn: %w", err)
	}
	if !ok {
		return fmt.Errorf("txn rejected: %d errors, first %q", len(resp.Errors), resp.Errors[0].What)
	}
	return nil
}

// gwConf is one gateway in a generated controller configuration.
type gwConf struct {
	name, dc string
	srv      *harness.Server
}

// ctrlConf renders a controller configuration.
type ctrlConf struct {
	public    string
	include   []string
	schedule  string
	admin     string
	gateways  []gwConf
	timeout   string
	inFlight  int
	markerInt string
}

func (c ctrlConf) write(tb testing.TB) string {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n  timeout = %q\n  max_in_flight_per_dc = %d\n}\n", c.public, or(c.timeout, "5s"), orI(c.inFlight, config.DefaultMaxInFlightPerDC))
	b.WriteString("query {\n  failover {\n    nearest_n = 3\n    datacenters = [\"dc1\", \"dc2\", \"dc3\"]\n  }\n}\n")
	q := make([]string, len(c.include))
	for i, s := range c.include {
		q[i] = fmt.Sprintf("%q", s)
	}
	fmt.Fprintf(&b, "services {\n  include = [%s]\n}\n", strings.Join(q, ", "))
	b.WriteString("safety {\n  delete_guard_min = 1000\n}\n")
	if c.markerInt != "" {
		fmt.Fprintf(&b, "mirror {\n  marker_interval = %q\n}\n", c.markerInt)
	}
	fmt.Fprintf(&b, "admin {\n  address = %q\n}\n", or(c.admin, "127.0.0.1:0"))
	for _, g := range c.gateways {
		fmt.Fprintf(&b, "gateway %q {\n  source_datacenter = %q\n  schedule = %q\n  dedicated {\n    address = %q\n  }\n}\n",
			g.name, g.dc, or(c.schedule, "@every 1h"), g.srv.HTTPAddr())
	}
	path := filepath.Join(tb.TempDir(), "gwsync.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatalf("bench: write config: %v", err)
	}
	return path
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orI(i, def int) int {
	if i == 0 {
		return def
	}
	return i
}

// controller builds an in-process controller; its schedule runs only if
// the caller calls Run.
func controller(tb testing.TB, c ctrlConf) (*syncer.Controller, *prometheus.Registry) {
	tb.Helper()
	cfg, err := config.Load(c.write(tb), nil)
	if err != nil {
		tb.Fatalf("bench: config: %v", err)
	}
	reg := prometheus.NewRegistry()
	ctrl, err := syncer.New(cfg, syncer.Options{Logger: quietLogger(tb), Registerer: reg})
	if err != nil {
		tb.Fatalf("bench: controller: %v", err)
	}
	return ctrl, reg
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

// syncUntilComplete runs full reconciles of gateway until one is complete.
func syncUntilComplete(tb testing.TB, c *syncer.Controller, gw string) syncer.Result {
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

// client builds an API client for addr with room for conns connections.
func client(tb testing.TB, addr string, conns int) *api.Client {
	tb.Helper()
	c, err := config.Cluster{Address: addr, Scheme: "http", Timeout: 10 * time.Second}.NewClient(config.ClientOptions{MaxConnsPerHost: conns})
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

// startResolver starts a gwsync resolver for gw reading local, falling
// back to the public cluster through the proxy. Its local client has one
// connection per watched service (each holds a blocking query), plus room
// for the marker watch and first lookups; the library's callers size it.
func (e *Env) startResolver(gw, dc string, local *harness.Server, services int) *runningResolver {
	e.TB.Helper()
	r, err := gateway.New(gateway.Options{
		Local:            client(e.TB, local.HTTPAddr(), services+32),
		Public:           client(e.TB, e.Proxy.Addr(), 0),
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
	rr := &runningResolver{Resolver: r, stop: func() { cancel(); wg.Wait() }}
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
