package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

// The least-privilege ACL policies the README documents, one rule a line:
// the tests create every token from exactly these rules, and remove each
// rule in turn to show gwsync cannot do without it.
var (
	// publicControllerRules: the controller's token on the public cluster.
	// Node and service read let it list catalogs, execute the prepared
	// query (Consul filters its answer by both), confirm empty answers and
	// follow the change feed (health/state/any, catalog/services); query
	// write on the template's prefix lets it list, create and update the
	// template. Datacenter lists and network coordinates (nearest-DC
	// failover targets) need no rule.
	publicControllerRules = []string{
		`node_prefix "" { policy = "read" }`,
		`service_prefix "" { policy = "read" }`,
		`query_prefix "gwsync-" { policy = "write" }`,
	}
	// publicReadRules: the gateways' token on the public cluster. Executing
	// a prepared query needs no query rule, only read on what it returns.
	publicReadRules = []string{
		`node_prefix "" { policy = "read" }`,
		`service_prefix "" { policy = "read" }`,
	}
	// dedicatedControllerRules: the controller's token on a dedicated
	// cluster. Nodes only under the mirror's node prefix: a foreign node
	// outside it can never take a mirrored name, so it need not be seen.
	// Sessions are written on the server's own node name (HA locks).
	dedicatedControllerRules = []string{
		`node_prefix "gwsync-" { policy = "write" }`,
		`service_prefix "" { policy = "write" }`,
		`key_prefix "gwsync/" { policy = "write" }`,
		`session_prefix "" { policy = "write" }`,
		`query_prefix "gwsync-" { policy = "write" }`,
	}
	// dedicatedReadRules: the gateways' token on their dedicated cluster
	// (and the local prepared query's callers).
	dedicatedReadRules = []string{
		`node_prefix "" { policy = "read" }`,
		`service_prefix "" { policy = "read" }`,
		`key_prefix "gwsync/" { policy = "read" }`,
	}
)

// managementToken is the secured servers' initial management token.
const managementToken = "9d3c6f0e-2b7a-4c1e-8f5d-6a4b3c2d1e0f"

// aclPolicy is one policy of the secured environment and where it lives.
type aclPolicy struct {
	name  string
	srv   *harness.Server // the primary DC for public policies
	id    string
	rules []string
}

// render is the policy's rules without the one at index skip (-1: all),
// plus extra.
func (p *aclPolicy) render(skip int, extra ...string) string {
	var lines []string
	for i, r := range p.rules {
		if i != skip {
			lines = append(lines, r)
		}
	}
	return strings.Join(append(lines, extra...), "\n")
}

// secureEnv is a public federation (dc1 primary, dc2) and one dedicated
// cluster, all with ACLs (default deny) and TLS with verify_incoming,
// tokens made from exactly the least-privilege policies, and a gwsync
// configuration that reaches them over HTTPS with those tokens.
type secureEnv struct {
	ca       *harness.CA
	fed      *harness.Federation
	dc1, dc2 *harness.Server
	gw1      *harness.Server

	publicController, publicRead, dedicatedController, dedicatedRead aclPolicy

	// tokens holds every secret by file name (and "management").
	tokens map[string]string
	dir    string
	cfg    string // the configuration file

	mu      sync.Mutex
	outputs map[string]func() string // what gwsync printed or served, by origin
	// partial: a subtest failed, so the later ones did not run and the
	// leak check cannot expect every kind of output.
	partial bool
}

// startSecure starts the secured clusters, creates the tokens and writes
// the configuration.
func startSecure(t *testing.T) *secureEnv {
	t.Helper()
	e := &secureEnv{ca: harness.NewCA(t), dir: t.TempDir(), tokens: map[string]string{"management": managementToken},
		outputs: map[string]func() string{}}
	e.fed = harness.StartFederationWith(t, []string{"dc1", "dc2"}, harness.WithACL(managementToken), harness.WithTLS(e.ca))
	e.gw1 = harness.StartServer(t, "gw1", harness.WithACL(managementToken), harness.WithTLS(e.ca))
	e.dc1, e.dc2 = e.fed.Server("dc1"), e.fed.Server("dc2")
	e.publicController = aclPolicy{name: "gwsync-public-controller", srv: e.dc1, rules: publicControllerRules}
	e.publicRead = aclPolicy{name: "gwsync-public-read", srv: e.dc1, rules: publicReadRules}
	e.dedicatedController = aclPolicy{name: "gwsync-dedicated-controller", srv: e.gw1, rules: dedicatedControllerRules}
	e.dedicatedRead = aclPolicy{name: "gwsync-dedicated-read", srv: e.gw1, rules: dedicatedReadRules}
	for _, f := range []struct {
		file string
		p    *aclPolicy
	}{{"public.token", &e.publicController}, {"public-read.token", &e.publicRead}, {"gw1.token", &e.dedicatedController}, {"gw1-read.token", &e.dedicatedRead}} {
		f.p.id = f.p.srv.CreatePolicy(t, f.p.name, f.p.render(-1))
		e.tokens[f.file] = f.p.srv.CreateToken(t, f.p.name, f.p.id)
	}
	e.tokens["admin.token"] = "gwsync-admin-bearer-7c41e0d2b9a8"
	for name, tok := range e.tokens {
		if name != "management" {
			if err := os.WriteFile(filepath.Join(e.dir, name), []byte(tok+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.fed.WaitACLReplicated(t)
	e.cfg = e.writeConfig(t, "gwsync.hcl", configOpts{ca: e.ca})
	return e
}

// register writes the public side: sec-web in dc1 (two instances) and in
// dc2 (the failover target), sec-api in dc2 only (mirrored through
// failover), sec-pay in dc1, and "other" (both DCs), which gw1 does not
// mirror.
func (e *secureEnv) register(t *testing.T) {
	t.Helper()
	for _, r := range []struct {
		srv                 *harness.Server
		node, svc, id, addr string
		port                int
	}{
		{e.dc1, "n1", "sec-web", "sec-web-1", "10.1.0.1", 8001}, {e.dc1, "n2", "sec-web", "sec-web-2", "10.1.0.2", 8002},
		{e.dc2, "n7", "sec-web", "sec-web-dc2", "10.2.0.7", 8007}, {e.dc2, "n3", "sec-api", "sec-api-1", "10.2.0.3", 8003},
		{e.dc1, "n4", "sec-pay", "sec-pay-1", "10.1.0.4", 8004}, {e.dc1, "n5", "other", "other-1", "10.1.0.5", 8005},
		{e.dc2, "n8", "other", "other-dc2", "10.2.0.8", 8008},
	} {
		r.srv.Register(t, harness.Instance{Node: r.node, Address: r.addr, Service: r.svc, ID: r.id, Port: r.port})
	}
}

// converge runs one full reconcile (without HA; nothing else may hold
// gw1's lock) and checks it completed, so the mirror holds what the
// public side has.
func (e *secureEnv) converge(t *testing.T) {
	t.Helper()
	c, _ := e.newController(t, e.cfg, &logSink{}, false)
	if res, err := syncGW1(t, c); err != nil || !res.Complete || len(res.Errors) > 0 {
		t.Fatalf("full reconcile: %s", describeResult(res, err))
	}
}

// setPolicy replaces a policy's rules and waits until every DC applies it.
func (e *secureEnv) setPolicy(t *testing.T, p *aclPolicy, rules string) {
	t.Helper()
	p.srv.UpdatePolicy(t, p.id, p.name, rules)
	if p.srv == e.dc1 {
		e.fed.WaitACLReplicated(t)
	}
}

// configOpts vary the configuration written by writeConfig.
type configOpts struct {
	ca     *harness.CA // the CA gwsync trusts
	noCert bool        // no client certificate
	admin  string      // admin address ("" picks a free port)
	// unmanaged: query.manage = false (the template must exist; gwsync
	// only checks it).
	unmanaged bool
}

// writeConfig writes a gwsync configuration for the environment and
// returns its path. Tokens come from files next to it.
func (e *secureEnv) writeConfig(t *testing.T, name string, o configOpts) string {
	t.Helper()
	c := o.ca.ClientTLS(t)
	tlsBlock := fmt.Sprintf("tls {\n      ca_file = %q\n", c.CAFile)
	if !o.noCert {
		tlsBlock += fmt.Sprintf("      cert_file = %q\n      key_file = %q\n", c.CertFile, c.KeyFile)
	}
	tlsBlock += "    }"
	var b strings.Builder
	fmt.Fprintf(&b, "public {\n  address = %q\n  token_file = \"public.token\"\n  read_token_file = \"public-read.token\"\n  timeout = \"3s\"\n  %s\n}\n",
		e.dc1.URL(), strings.ReplaceAll(tlsBlock, "\n    ", "\n  "))
	fmt.Fprintf(&b, "query {\n  manage = %t\n  share_window = \"0s\"\n  failover {\n    nearest_n = 3\n    datacenters = [\"dc1\", \"dc2\"]\n  }\n}\n", !o.unmanaged)
	b.WriteString("services {\n  include = [\"sec-*\"]\n}\n")
	fmt.Fprintf(&b, "admin {\n  address = %q\n  token_file = \"admin.token\"\n}\n", or(o.admin, "127.0.0.1:0"))
	b.WriteString("mirror {\n  max_sync_age = \"24h\"\n}\n")
	fmt.Fprintf(&b, "gateway \"gw1\" {\n  source_datacenter = \"dc1\"\n  schedule = \"@every 1h\"\n  dedicated {\n    address = %q\n    token_file = \"gw1.token\"\n    read_token_file = \"gw1-read.token\"\n    %s\n  }\n}\n",
		e.gw1.URL(), tlsBlock)
	path := filepath.Join(e.dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// collect registers a source of gwsync output for the leak check.
func (e *secureEnv) collect(name string, f func() string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 2; e.outputs[name] != nil; i++ {
		name = fmt.Sprintf("%s #%d", strings.TrimSuffix(name, fmt.Sprintf(" #%d", i-1)), i)
	}
	e.outputs[name] = f
}

// mirrorState is every gwsync-owned instance of the mirrored services.
func (e *secureEnv) mirrorState(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, s := range []string{"sec-web", "sec-api", "sec-pay"} {
		out[s] = ids(mustMirror(t, e.gw1, s))
	}
	return out
}

func sameMirror(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// logSink captures every log line (all levels).
type logSink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logSink) logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Trace, Output: l})
}

// ctrlRun is a controller run in the background (schedule, change feed,
// heartbeat, HA lease), as `gwsync run` runs it, logging at trace level.
type ctrlRun struct {
	c      *syncer.Controller
	reg    *prometheus.Registry
	logs   *logSink
	cancel context.CancelFunc
	done   chan struct{}
}

// newController builds a controller from the configuration at path as
// `gwsync run` does (HA included unless ha is false), logging into logs.
func (e *secureEnv) newController(t *testing.T, path string, logs *logSink, ha bool) (*syncer.Controller, *prometheus.Registry) {
	t.Helper()
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	reg := prometheus.NewRegistry()
	opts, err := consul.Setup(cfg, syncer.Options{Logger: logs.logger("gwsync"), Registerer: reg, Replica: "e2e"})
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	if !ha {
		opts.Leases = nil
	}
	c, err := syncer.New(cfg, opts)
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	e.collect("controller log", logs.String)
	e.collect("controller metrics", func() string { return metricsText(reg) })
	return c, reg
}

// run starts a controller (with HA: it writes gw1 only once it holds the
// lock). It stops when the test ends, or earlier with stop.
func (e *secureEnv) run(t *testing.T, path string) *ctrlRun {
	t.Helper()
	r := &ctrlRun{logs: &logSink{}, done: make(chan struct{})}
	r.c, r.reg = e.newController(t, path, r.logs, true)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		_ = r.c.Run(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends the controller and waits for it (it releases its lock).
func (r *ctrlRun) stop() {
	r.cancel()
	<-r.done
}

// owns reports whether the controller writes gw1: it holds the lock and
// has taken up the lease (Sync refuses before that).
func (r *ctrlRun) owns() bool {
	for _, g := range r.c.Status().Gateways {
		if g.Name == "gw1" {
			return g.Owned
		}
	}
	return false
}

// waitOwns waits until the controller holds gw1's lock.
func (r *ctrlRun) waitOwns(t *testing.T) {
	t.Helper()
	harness.Eventually(t, waitTimeout, func() error {
		if !r.owns() {
			return fmt.Errorf("controller does not hold gw1's lock yet; its log:\n%s", r.logs.String())
		}
		return nil
	})
}

// syncGW1 runs one full reconcile of gw1 (or of services) and returns its
// result and error.
func syncGW1(t *testing.T, c *syncer.Controller, services ...string) (syncer.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return c.Sync(ctx, syncer.Request{Gateway: "gw1", Services: services})
}

// resolver runs a resolver for gw1 as a gateway host builds it: both
// clients from config.LoadGateway (read tokens only). local, if not nil,
// replaces the dedicated cluster's client.
func (e *secureEnv) resolver(t *testing.T, path string, local *api.Client) (*gateway.Resolver, *logSink) {
	t.Helper()
	gc, err := config.LoadGateway(path, "gw1", nil)
	if err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	if local == nil {
		if local, err = gc.Dedicated.NewClient(config.ClientOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	public, err := gc.Public.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs, reg := &logSink{}, prometheus.NewRegistry()
	r, err := gateway.New(gateway.Options{Local: local, Public: public, SourceDatacenter: gc.SourceDatacenter, QueryPrefix: gc.QueryPrefix,
		Gateway: gc.Name, KVPrefix: gc.KVPrefix, Logger: logs.logger("resolver"), Registerer: reg})
	if err != nil {
		t.Fatalf("resolver: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.collect("resolver log", logs.String)
	e.collect("resolver metrics", func() string { return metricsText(reg) })
	e.collect("resolver status", func() string { return fmt.Sprintf("%+v", r.Status()) })
	return r, logs
}

// metricsText is what /metrics serves for reg.
func metricsText(reg *prometheus.Registry) string {
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// resolveOnce looks service up once.
func resolveOnce(r *gateway.Resolver, service string) (gateway.Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	return r.Resolve(ctx, service)
}
