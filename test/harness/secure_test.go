package harness

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

const testManagementToken = "5b0c2a52-6f37-4d52-9d43-4b6f1f3e7a01"

// TestStartFederationWith_ACLAndTLS: a two-DC federation with ACLs
// (default deny) and TLS everywhere starts, federates and serves the
// harness's helpers; a policy made in the primary reaches the secondary
// through replication; a client without a certificate, or one that does
// not trust the CA, is refused.
func TestStartFederationWith_ACLAndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real Consul: skipped under -short")
	}
	t.Parallel()
	ca := NewCA(t)
	fed := StartFederationWith(t, []string{"dc1", "dc2"}, WithACL(testManagementToken), WithTLS(ca))
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	if dc1.Scheme() != "https" || !strings.HasPrefix(dc2.URL(), "https://127.0.0.1:") {
		t.Fatalf("scheme %q, URL %q: want https", dc1.Scheme(), dc2.URL())
	}
	dc2.Register(t, Instance{Node: "n1", Address: "10.1.0.1", Service: "web", Port: 80})
	if got := datacenters(t, dc2); !slices.Equal(got, []string{"dc1", "dc2"}) {
		t.Fatalf("datacenters = %v", got)
	}

	pol := dc1.CreatePolicy(t, "read-web", `service "web" { policy = "read" }
node_prefix "" { policy = "read" }`)
	tok := dc1.CreateToken(t, "web reader", pol)
	fed.WaitACLReplicated(t)
	// Through dc1, answered by dc2: the token resolves in the secondary.
	c := dc1.ClientWithToken(t, tok)
	nodes, _, err := c.Health().Service("web", "", true, (&api.QueryOptions{Datacenter: "dc2"}).WithContext(ctxT(t)))
	if err != nil || len(nodes) != 1 {
		t.Fatalf("health/service/web?dc=dc2 with the reader token = %d entries, %v; want 1", len(nodes), err)
	}
	if _, _, err := c.KV().Get("k", (&api.QueryOptions{}).WithContext(ctxT(t))); err == nil || !strings.Contains(err.Error(), "lacks permission 'key:read'") {
		t.Fatalf("kv read with the reader token: %v, want a permission error naming key:read", err)
	}
	anon, _, err := dc1.ClientWithToken(t, "").Catalog().Services((&api.QueryOptions{Datacenter: "dc2"}).WithContext(ctxT(t)))
	if err != nil || len(anon) != 0 {
		t.Fatalf("anonymous catalog/services = %v, %v; want nothing (default deny)", anon, err)
	}

	// verify_incoming: trusting the CA is not enough without a certificate.
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("read CA: %v", err)
	}
	noCert := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if resp, err := noCert.Get(dc1.URL() + "/v1/status/leader"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %s, want the handshake refused", resp.Status)
	}
	// And a client must not trust a server of another CA.
	other := NewCA(t)
	bad := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: other.tlsConfig(t)}}
	_, err = bad.Get(dc1.URL() + "/v1/status/leader")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("a client trusting another CA: %v, want x509.UnknownAuthorityError", err)
	}
}

// TestStartServer_ACLAndTLS: a standalone server with WithACL and WithTLS
// is its own ACL primary; the harness's helpers and Restart work as
// without them.
func TestStartServer_ACLAndTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("real Consul: skipped under -short")
	}
	t.Parallel()
	s := StartServer(t, "gw-sec", WithACL(testManagementToken), WithTLS(NewCA(t)))
	s.Register(t, Instance{Node: "n1", Address: "10.1.0.1", Service: "api", Port: 80})
	s.SetStatus(t, "n1", "api", api.HealthCritical)
	if got := services(t, s); !slices.Equal(got, []string{"api"}) {
		t.Fatalf("services = %v", got)
	}
	if s.RaftLastIndex(t) == 0 {
		t.Fatal("RaftLastIndex = 0")
	}
	// Tokens set through the API are persisted by the agent in its working
	// directory: never the test's (the source tree).
	if _, err := s.Client(t).Agent().UpdateDNSToken(testManagementToken, (&api.WriteOptions{}).WithContext(ctxT(t))); err != nil {
		t.Fatalf("set the DNS token: %v", err)
	}
	Eventually(t, StartTimeout, func() error {
		if _, err := os.Stat(filepath.Join(s.dir, "acl-tokens.json")); err != nil {
			return fmt.Errorf("the agent persisted no token in its own directory: %w", err)
		}
		return nil
	})
	if _, err := os.Stat("acl-tokens.json"); err == nil {
		t.Fatal("the agent wrote acl-tokens.json into the test's working directory")
	}
	// After a restart only the management token exists again: it still
	// works for the harness.
	s.Restart(t)
	if got := services(t, s); len(got) != 0 {
		t.Fatalf("services after restart = %v, want none (in-memory data)", got)
	}
}
