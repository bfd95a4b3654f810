// Package e2e holds gwsync's end-to-end tests: the sync controller against
// real Consul servers (a WAN-federated public side plus dedicated clusters).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

// waitTimeout bounds every condition wait in these tests.
const waitTimeout = 30 * time.Second

// gw is one gateway under test: its name, source DC and dedicated cluster.
type gw struct {
	name string
	dc   string
	srv  *harness.Server
}

// setup describes a controller configuration for a test.
type setup struct {
	publicAddr  string
	gateways    []gw
	include     []string
	shareWindow string
	guardMin    int
	fraction    float64
	schedule    string
	// events keeps the public change feed (the event path); without it
	// tests drive every cycle themselves.
	events bool
	// markerInterval is mirror.marker_interval ("" = default).
	markerInterval string
	extra          string
}

// hcl renders the setup as a configuration file and returns its path.
func (s setup) hcl(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n  timeout = \"3s\"\n}\n", s.publicAddr)
	fmt.Fprintf(&b, "query {\n  share_window = %q\n  failover {\n    nearest_n = 3\n    datacenters = [\"dc1\", \"dc2\"]\n  }\n}\n", or(s.shareWindow, "0s"))
	fmt.Fprintf(&b, "services {\n  include = [%s]\n}\n", quoteList(s.include))
	fmt.Fprintf(&b, "safety {\n  max_delete_fraction = %v\n  delete_guard_min = %d\n}\n", orF(s.fraction, 0.5), orI(s.guardMin, 5))
	fmt.Fprintf(&b, "admin {\n  address = \"127.0.0.1:0\"\n}\n")
	// Tests drive every cycle; the schedule ("@every 1h") never fires, and
	// max_sync_age must allow it.
	fmt.Fprintf(&b, "mirror {\n  max_sync_age = \"24h\"\n  marker_interval = %q\n}\n", or(s.markerInterval, "1m"))
	for _, g := range s.gateways {
		fmt.Fprintf(&b, "gateway %q {\n  source_datacenter = %q\n  schedule = %q\n  dedicated {\n    address = %q\n  }\n}\n",
			g.name, g.dc, or(s.schedule, "@every 1h"), g.srv.HTTPAddr())
	}
	b.WriteString(s.extra)
	path := filepath.Join(t.TempDir(), "gwsync.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orF(f, def float64) float64 {
	if f == 0 {
		return def
	}
	return f
}

func orI(i, def int) int {
	if i == 0 {
		return def
	}
	return i
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// controller builds an in-process controller for the setup. Its schedule
// is not started: tests drive cycles with sync, so every cycle is explicit.
func (s setup) controller(t *testing.T) (*syncer.Controller, *prometheus.Registry) {
	t.Helper()
	cfg, err := config.Load(s.hcl(t), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	log := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.LevelFromString(or(os.Getenv("GWSYNC_TEST_LOG"), "warn")), Output: testWriter{t}})
	opts, err := consul.Setup(cfg, syncer.Options{Logger: log, Registerer: reg, Replica: "e2e"})
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	if !s.events {
		opts.Detector = nil // tests drive every cycle themselves
	}
	opts.Leases = nil // one controller, writing every gateway (HA has tests of its own)
	c, err := syncer.New(cfg, opts)
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	return c, reg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// cycle runs one full reconcile of gateway and returns its result.
func cycle(t *testing.T, c *syncer.Controller, gateway string) syncer.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := c.Sync(ctx, syncer.Request{Gateway: gateway})
	if err != nil {
		t.Fatalf("sync %s: %v (result %+v)", gateway, err, res)
	}
	return res
}

// mirrored is a compact view of one mirrored instance for assertions.
type mirrored struct {
	Node, ID, Service, Address string
	Port                       int
	Tags                       string
	SourceDC, Failovers        string
}

// mirrorOf reads every gwsync-owned instance of service from a dedicated
// cluster, sorted by node and ID.
func mirrorOf(t *testing.T, srv *harness.Server, service string) ([]mirrored, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	entries, _, err := srv.Client(t).Catalog().Service(service, "", q)
	if err != nil {
		return nil, err
	}
	out := make([]mirrored, 0, len(entries))
	for _, e := range entries {
		out = append(out, mirrored{Node: e.Node, ID: e.ServiceID, Service: e.ServiceName, Address: e.ServiceAddress, Port: e.ServicePort,
			Tags: strings.Join(e.ServiceTags, ","), SourceDC: e.NodeMeta[mirror.MetaSourceDC], Failovers: e.ServiceMeta[mirror.MetaFailovers]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node+"/"+out[i].ID < out[j].Node+"/"+out[j].ID })
	return out, nil
}

// mustMirror is mirrorOf that fails the test on error.
func mustMirror(t *testing.T, srv *harness.Server, service string) []mirrored {
	t.Helper()
	m, err := mirrorOf(t, srv, service)
	if err != nil {
		t.Fatalf("read mirror of %s: %v", service, err)
	}
	return m
}

// ids returns the "node/id" of each instance.
func ids(m []mirrored) []string {
	out := make([]string, len(m))
	for i, x := range m {
		out[i] = x.Node + "/" + x.ID
	}
	return out
}

// inst is a shorthand for a public instance.
func inst(node, service, id string, port int, tags ...string) harness.Instance {
	return harness.Instance{Node: node, Address: "10.0.0." + fmt.Sprint(1+len(node)%200), ID: id, Service: service, Port: port, Tags: tags}
}

// indexOf returns the X-Consul-Index of a GET on a dedicated cluster.
func indexOf(t *testing.T, srv *harness.Server, path string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out any
	meta, err := srv.Client(t).Raw().Query(path, &out, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return meta.LastIndex
}

// metricSum adds up the samples of a counter or gauge family whose labels
// include want.
func metricSum(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return harness.SumFamily(f, want)
		}
	}
	return 0
}

// gwsyncWrites fingerprints what gwsync wrote to a dedicated cluster: the
// txns it sent (its metric) and the ModifyIndex of every owned node and
// every key under its KV prefix. Unlike the server's Raft index, it does
// not move with the server's own housekeeping (a fresh server appends
// entries of its own for a while), so "nothing written" is checked exactly.
func gwsyncWrites(t *testing.T, srv *harness.Server, reg prometheus.Gatherer, gateway string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := srv.Client(t)
	var last uint64
	pairs, _, err := c.KV().List("gwsync/", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("read gwsync keys: %v", err)
	}
	for _, p := range pairs {
		last = max(last, p.ModifyIndex)
	}
	nodes, _, err := c.Catalog().Nodes((&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx))
	if err != nil {
		t.Fatalf("read gwsync nodes: %v", err)
	}
	for _, n := range nodes {
		last = max(last, n.ModifyIndex)
	}
	txns := metricSum(t, reg, "gwsync_dedicated_txns_total", map[string]string{"gateway": gateway})
	return fmt.Sprintf("%d keys/nodes, last index %d, %v txns", len(pairs)+len(nodes), last, txns)
}
