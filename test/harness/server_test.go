package harness

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
)

// TestServer_Restart shows a restarted dedicated server keeps its address,
// comes back with an empty catalog, and that the catalog helpers and
// RaftLastIndex work against it.
func TestServer_Restart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "gw-restart")
	addr := s.HTTPAddr()
	c := s.Client(t)

	before := s.RaftLastIndex(t)
	if before == 0 {
		t.Fatal("RaftLastIndex = 0 on a started server")
	}
	s.Register(t, Instance{Node: "api-1", Address: "10.0.0.1", ID: "api-1", Service: "api", Port: 80, Status: api.HealthCritical})
	if after := s.RaftLastIndex(t); after <= before {
		t.Fatalf("RaftLastIndex after a register = %d, want > %d", after, before)
	}
	passing := func() int {
		entries, _, err := c.Health().Service("api", "", true, (&api.QueryOptions{}).WithContext(ctxT(t)))
		if err != nil {
			t.Fatalf("health/service: %v", err)
		}
		return len(entries)
	}
	if n := passing(); n != 0 {
		t.Fatalf("critical instance: %d passing, want 0", n)
	}
	s.SetStatus(t, "api-1", "api-1", "")
	if n := passing(); n != 1 {
		t.Fatalf("after SetStatus passing: %d passing, want 1", n)
	}
	s.Register(t, Instance{Node: "api-1", Address: "10.0.0.1", ID: "api-2", Service: "api", Port: 81})
	s.Deregister(t, "api-1", "api-2")
	if n := passing(); n != 1 {
		t.Fatalf("after Deregister: %d passing, want 1", n)
	}

	start := time.Now()
	s.Restart(t)
	t.Logf("measured: dedicated server restart (kill, start empty, leader): %s", time.Since(start).Round(time.Millisecond))
	if s.HTTPAddr() != addr {
		t.Fatalf("HTTPAddr after restart = %s, want %s", s.HTTPAddr(), addr)
	}
	if got := services(t, s); len(got) != 0 {
		t.Fatalf("restarted server has services %v, want none", got)
	}
	if idx := s.RaftLastIndex(t); idx == 0 {
		t.Fatal("RaftLastIndex = 0 after restart")
	}
	// A client made before the restart still works: same address.
	s.Register(t, Instance{Node: "api-9", Address: "10.0.0.9", Service: "api", Port: 80})
	if n := passing(); n != 1 {
		t.Fatalf("after restart and register: %d passing, want 1", n)
	}
	s.DeregisterNode(t, "api-9")
	if got := services(t, s); len(got) != 0 {
		t.Fatalf("after DeregisterNode: services %v, want none", got)
	}

	s.Stop(t)
	s.Stop(t) // idempotent
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("HTTP port %s accepts connections after Stop", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after Stop: %v, want connection refused", err)
	}
}

func TestConsulBin(t *testing.T) {
	bin := ConsulBin(t)
	if !filepath.IsAbs(bin) {
		t.Fatalf("ConsulBin = %q, want an absolute path", bin)
	}
	if !strings.HasPrefix(os.Getenv("PATH"), filepath.Dir(bin)+string(os.PathListSeparator)) {
		t.Fatalf("PATH does not start with %s", filepath.Dir(bin))
	}

	t.Setenv(ConsulBinEnv, filepath.Join(t.TempDir(), "consul"))
	if _, err := findConsulBin(); err == nil {
		t.Fatal("findConsulBin with a missing binary: no error")
	}
	t.Setenv(ConsulBinEnv, "")
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("moduleRoot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("moduleRoot %s has no go.mod: %v", root, err)
	}
	if got, err := findConsulBin(); err != nil || got != filepath.Join(root, "bin", "consul") {
		t.Fatalf("findConsulBin without env = %q, %v; want %s", got, err, filepath.Join(root, "bin", "consul"))
	}
}

// TestStartServer_ACL starts a server with ACLs on through WithHCL and
// WithToken: the harness's own calls and Client use the token, an
// anonymous client sees nothing.
func TestStartServer_ACL(t *testing.T) {
	t.Parallel()
	const token = "3f0c5bd8-4e8c-4a8e-9a57-0d6f8a7f0001"
	s := StartServer(t, "gw-acl",
		WithHCL(`acl { enabled = true
		default_policy = "deny"
		tokens { initial_management = "`+token+`" } }`),
		WithToken(token))
	s.Register(t, Instance{Node: "acl-1", Address: "10.9.0.1", Service: "secret", Port: 1})
	if got := services(t, s); !slices.Equal(got, []string{"secret"}) {
		t.Fatalf("services with the management token = %v, want [secret]", got)
	}
	anon, err := config.Cluster{Address: s.HTTPAddr(), Scheme: "http"}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := anon.Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatalf("anonymous catalog/services: %v", err)
	}
	if len(m) != 0 {
		t.Fatalf("anonymous catalog/services = %v, want nothing (filtered)", m)
	}
	if idx := s.RaftLastIndex(t); idx == 0 {
		t.Fatal("RaftLastIndex = 0")
	}
}
