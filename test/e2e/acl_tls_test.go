package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// TestACLTLS runs gwsync against Consul with ACLs (default deny) and TLS
// everywhere (verify_incoming on the HTTPS API and server RPC): a
// WAN-federated public side (dc1, the ACL primary, and dc2) and gw1's
// dedicated cluster. Every token is made from exactly the least-privilege
// policies above. The subtests share the servers and run in order; each
// leaves the policies as it found them and stops what it started.
func TestACLTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real Consul: skipped under -short")
	}
	e := startSecure(t)
	e.register(t)
	for _, st := range []struct {
		name string
		fn   func(*testing.T, *secureEnv)
	}{
		{"controller", testSecureController},
		{"resolver", testSecureResolver},
		{"rules", testLeastPrivilegeRules},
		{"hidden service kept", testHiddenServiceKept},
		{"fresh mirror without node write", testFreshMirrorRefused},
		{"tls", testTLSRefusals},
		{"process", testSecureProcess},
		{"read token check", testReadTokenCheck},
		{"no token leaks", testNoTokenLeaks},
	} {
		if !t.Run(st.name, func(t *testing.T) { st.fn(t, e) }) && st.name != "no token leaks" {
			// Later subtests assume the state this one leaves; the leak
			// check still runs on whatever was captured.
			e.partial = true
			t.Run("no token leaks", func(t *testing.T) { testNoTokenLeaks(t, e) })
			return
		}
	}
}

// waitMirror waits until the mirror holds exactly want (for the services
// want names).
func (e *secureEnv) waitMirror(t *testing.T, want map[string][]string) {
	t.Helper()
	harness.Eventually(t, waitTimeout, func() error {
		for svc := range want {
			m, err := mirrorOf(t, e.gw1, svc)
			if err != nil {
				return err
			}
			if got := ids(m); !slices.Equal(got, want[svc]) {
				return fmt.Errorf("mirror of %s = %v, want %v", svc, got, want[svc])
			}
		}
		return nil
	})
}

// The controller, with exactly the least-privilege tokens, over TLS:
// mirrors (a service only dc2 has, through failover), follows changes
// through the change feed (a new instance; failover to dc2 and back),
// converges (a full reconcile then writes nothing), and the local
// prepared query answers a gateway holding only the read token.
func testSecureController(t *testing.T, e *secureEnv) {
	r := e.run(t, e.cfg)
	r.waitOwns(t)
	web := []string{"gwsync-dc1.n1/sec-web-1", "gwsync-dc1.n2/sec-web-2"}
	e.waitMirror(t, map[string][]string{"sec-web": web, "sec-api": {"gwsync-dc2.n3/sec-api-1"}, "sec-pay": {"gwsync-dc1.n4/sec-pay-1"}})
	if m := mustMirror(t, e.gw1, "sec-api"); m[0].SourceDC != "dc2" || m[0].Failovers != "1" {
		t.Fatalf("sec-api mirrored as %+v, want source dc2 after 1 failover", m[0])
	}

	// The change feed (blocking reads of health/state/any and
	// catalog/services with the controller's read rules) brings changes
	// without a scheduled cycle (the schedule is an hour away).
	e.dc1.Register(t, harness.Instance{Node: "n6", Address: "10.1.0.6", Service: "sec-web", ID: "sec-web-3", Port: 8006})
	e.waitMirror(t, map[string][]string{"sec-web": append(slices.Clone(web), "gwsync-dc1.n6/sec-web-3")})
	for _, n := range []string{"n1", "n2", "n6"} {
		e.dc1.SetStatus(t, n, map[string]string{"n1": "sec-web-1", "n2": "sec-web-2", "n6": "sec-web-3"}[n], api.HealthCritical)
	}
	e.waitMirror(t, map[string][]string{"sec-web": {"gwsync-dc2.n7/sec-web-dc2"}})
	e.dc1.DeregisterNode(t, "n6")
	for n, id := range map[string]string{"n1": "sec-web-1", "n2": "sec-web-2"} {
		e.dc1.SetStatus(t, n, id, api.HealthPassing)
	}
	e.waitMirror(t, map[string][]string{"sec-web": web})

	// A full reconcile cleans up what the event path leaves (nodes whose
	// last service went); the next one writes nothing.
	if res, err := syncGW1(t, r.c); err != nil || !res.Complete || len(res.Errors) > 0 {
		t.Fatalf("full reconcile: %v, %s", err, describeResult(res, err))
	}
	res, err := syncGW1(t, r.c)
	if err != nil || !res.Complete || res.TxnOps != 0 || len(res.Errors) > 0 {
		t.Fatalf("full reconcile of a converged mirror: %v, complete %t, %d txn ops (%+v), errors %v; want complete, no write", err, res.Complete, res.TxnOps, res.Changes, res.Errors)
	}

	// A gateway that executes prepared queries needs only the read token:
	// the local template answers what the public query answers.
	local, err := executeQuery(e.gw1.ClientWithToken(t, e.tokens["gw1-read.token"]), "gwsync-sec-api", "")
	if err != nil {
		t.Fatalf("local prepared query with the dedicated read token: %v", err)
	}
	public, err := executeQuery(e.dc1.ClientWithToken(t, e.tokens["public-read.token"]), "gwsync-sec-api", "dc1")
	if err != nil || len(public) != 1 || !slices.Equal(local, public) {
		t.Fatalf("local prepared query = %v; the public one (read token) = %v, %v", local, public, err)
	}
	// Over DNS the agent executes with its DNS token: anonymous (default
	// deny) sees nothing; the gateways' read policy is enough.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	dns := dnsResolver(e.gw1.DNSAddr())
	if _, srvs, err := dns.LookupSRV(ctx, "", "", "gwsync-sec-api.query.consul"); err == nil && len(srvs) > 0 {
		t.Fatalf("DNS answered %d records without a DNS token under default deny", len(srvs))
	}
	if _, err := e.gw1.Client(t).Agent().UpdateDNSToken(e.tokens["gw1-read.token"], (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("set the DNS token: %v", err)
	}
	_, srvs, err := dns.LookupSRV(ctx, "", "", "gwsync-sec-api.query.consul")
	if err != nil || len(srvs) != 1 || srvs[0].Port != 8003 {
		t.Fatalf("DNS SRV gwsync-sec-api.query.consul with the read token as DNS token: %v, %v; want port 8003", srvs, err)
	}
	r.stop()
}

// executeQuery executes a prepared query and returns its endpoints.
func executeQuery(c *api.Client, name, dc string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	resp, _, err := c.PreparedQuery().Execute(name, (&api.QueryOptions{Datacenter: dc}).WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return endpoints(resp), nil
}

// The resolver, built as a gateway host builds it (config.LoadGateway:
// read tokens only, TLS): a covered service from the mirror, an uncovered
// one from the public cluster; with its dedicated cluster unreachable,
// covered services come from the public cluster too.
func testSecureResolver(t *testing.T, e *secureEnv) {
	gc, err := config.LoadGateway(e.cfg, "gw1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if gc.Public.Token != e.tokens["public-read.token"] || gc.Dedicated.Token != e.tokens["gw1-read.token"] || !gc.Public.TLS.Enabled || !gc.Dedicated.TLS.Enabled {
		t.Fatal("the gateway configuration does not hold exactly the read tokens, with TLS, for both clusters")
	}
	e.converge(t)
	r, _ := e.resolver(t, e.cfg, nil)
	wantAnswer(t, r, "sec-web", gateway.SourceLocal, 8001, 8002)
	wantAnswer(t, r, "other", gateway.SourcePublic, 8005)
	if st := r.Status(); !st.LocalUsable || st.Covered != 3 {
		t.Fatalf("resolver status %+v, want the mirror usable, 3 services covered", st)
	}

	dead := gc.Dedicated
	dead.Address = freeAddr(t) // nothing listens there
	c, err := dead.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := e.resolver(t, e.cfg, c)
	wantAnswer(t, r2, "sec-web", gateway.SourcePublic, 8001, 8002)
}

// wantAnswer resolves service once and checks where the answer came from
// and its instances' ports.
func wantAnswer(t *testing.T, r *gateway.Resolver, service string, src gateway.Source, ports ...int) {
	t.Helper()
	a, err := resolveOnce(r, service)
	var got []int
	for _, in := range a.Instances {
		got = append(got, in.Port)
	}
	slices.Sort(got)
	if err != nil || a.Source != src || !slices.Equal(got, ports) {
		t.Fatalf("resolve %s: ports %v from %s, %v; want %v from %s", service, got, a.Source, err, ports, src)
	}
}

// A policy edit that hides a mirrored service from the controller's
// public token (a 200 with fewer results, X-Consul-Results-Filtered-By-ACLs)
// deletes nothing, though one delete is far under the mass-delete guard:
// the full reconcile keeps it (the catalog was filtered), and so does a
// forced resync of that service alone (its empty answer was filtered); the
// log and the result say why.
func testHiddenServiceKept(t *testing.T, e *secureEnv) {
	r := e.run(t, e.cfg)
	r.waitOwns(t)
	if res, err := syncGW1(t, r.c); err != nil || !res.Complete {
		t.Fatalf("baseline reconcile: %v, %+v", err, res)
	}
	before := e.mirrorState(t)
	if len(before["sec-pay"]) != 1 {
		t.Fatalf("sec-pay not mirrored before the policy edit: %v", before)
	}
	t.Cleanup(func() { e.setPolicy(t, &e.publicController, e.publicController.render(-1)) })
	e.setPolicy(t, &e.publicController, e.publicController.render(-1, `service "sec-pay" { policy = "deny" }`))

	res, err := syncGW1(t, r.c)
	if err != nil || res.Complete || res.Deletes != 0 || res.DeletesHeld != 0 || res.Kept["sec-pay"] == "" {
		t.Fatalf("full reconcile with sec-pay hidden: %v, complete %t, %d deletes (%d held), kept %v; want incomplete, sec-pay kept, nothing deleted or held",
			err, res.Complete, res.Deletes, res.DeletesHeld, res.Kept)
	}
	if report := describeResult(res, err) + "\n" + r.logs.String(); !strings.Contains(report, "filtered by ACLs") {
		t.Fatalf("the controller did not say why it kept sec-pay:\n%s", report)
	}
	res, err = syncGW1(t, r.c, "sec-pay")
	if err != nil || res.Deletes != 0 || !strings.Contains(res.Kept["sec-pay"], "ACL-filtered") {
		t.Fatalf("forced resync of the hidden sec-pay: %v, %d deletes, kept %q; want kept because the answer was ACL-filtered", err, res.Deletes, res.Kept["sec-pay"])
	}
	if got := e.mirrorState(t); !sameMirror(got, before) {
		t.Fatalf("mirror changed while sec-pay was hidden: %v, was %v", got, before)
	}

	e.setPolicy(t, &e.publicController, e.publicController.render(-1))
	if res, err := syncGW1(t, r.c); err != nil || !res.Complete || res.TxnOps != 0 {
		t.Fatalf("reconcile after the policy is restored: %v, complete %t, %d txn ops; want complete, no write", err, res.Complete, res.TxnOps)
	}
	r.stop()
}

// TLS: a client without a certificate of the CA is refused
// (verify_incoming), and gwsync trusting another CA, or presenting no
// certificate, fails with an error that says so.
func testTLSRefusals(t *testing.T, e *secureEnv) {
	pem, err := os.ReadFile(e.ca.CAFile)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("read CA: %v", err)
	}
	noCert := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for _, s := range []*harness.Server{e.dc1, e.dc2, e.gw1} {
		resp, err := noCert.Get(s.URL() + "/v1/status/leader")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s answered %s to a client without a certificate", s.DC, resp.Status)
		}
	}

	for _, c := range []struct {
		name string
		opts configOpts
		want string
	}{
		{"another CA", configOpts{ca: harness.NewCA(t)}, "certificate signed by unknown authority"},
		{"no client certificate", configOpts{ca: e.ca, noCert: true}, "tls: certificate required"},
	} {
		path := e.writeConfig(t, strings.ReplaceAll(c.name, " ", "-")+".hcl", c.opts)
		ctrl, _ := e.newController(t, path, &logSink{}, false)
		if _, err := syncGW1(t, ctrl); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: controller reconcile: %v; want an error containing %q", c.name, err, c.want)
		}
		r, _ := e.resolver(t, path, nil)
		if a, err := resolveOnce(r, "other"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: resolve: %d instances from %s, %v; want an error containing %q", c.name, len(a.Instances), a.Source, err, c.want)
		}
	}
}

// A gateway deployed with a dedicated token lacking node write: on a fresh
// (empty) mirror there is nothing to read, so the load passes and every
// write is refused, each naming node:write. The mirror must not then
// vouch for the services it could not write: resolvers resolve them from
// the public cluster, never as "no instances" from the mirror.
func testFreshMirrorRefused(t *testing.T, e *secureEnv) {
	e.wipeMirror(t)
	p := &e.dedicatedController
	t.Cleanup(func() { e.setPolicy(t, p, p.render(-1)); e.converge(t) })
	e.setPolicy(t, p, p.render(0))
	c, _ := e.newController(t, e.cfg, &logSink{}, false)
	res, err := syncGW1(t, c)
	if report := describeResult(res, err); err != nil || !strings.Contains(report, "lacks permission 'node:write'") {
		t.Fatalf("reconcile of a fresh mirror without node write: want it to end, every refused write naming the missing permission:\n%s", report)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cov, _, err := e.gw1.Client(t).KV().List(mirror.CoveragePrefix(mirror.DefaultKVPrefix, "gw1"), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range cov {
		if strings.Contains(string(kv.Value), "sec-") {
			t.Fatalf("coverage %s = %s: the mirror vouches for a service it holds no entry of", kv.Key, kv.Value)
		}
	}
	r, _ := e.resolver(t, e.cfg, nil)
	wantAnswer(t, r, "sec-web", gateway.SourcePublic, 8001, 8002)
}

// wipeMirror removes everything gwsync wrote in gw1's cluster, as a
// cluster that restarted empty (without losing its ACLs).
func (e *secureEnv) wipeMirror(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c := e.gw1.Client(t)
	nodes, _, err := c.Catalog().Nodes((&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		e.gw1.DeregisterNode(t, n.Node)
	}
	if _, err := c.KV().DeleteTree(mirror.DefaultKVPrefix, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
}
