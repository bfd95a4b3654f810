package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/gateway/refgw"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

func TestRunGateway_Flags(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gwsync.hcl")
	gwTestConfig(t, cfg, "127.0.0.1:1", "127.0.0.1:2")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "no flags", args: nil, wantCode: 2, wantErr: "-config FILE and -gateway NAME are required"},
		{name: "no gateway", args: []string{"-config", cfg}, wantCode: 2, wantErr: "-gateway NAME"},
		{name: "unknown flag", args: []string{"-config", cfg, "-gateway", "edge", "-bogus"}, wantCode: 2, wantErr: "flag provided but not defined"},
		{name: "positional argument", args: []string{"-config", cfg, "-gateway", "edge", "extra"}, wantCode: 2, wantErr: "no positional arguments"},
		{name: "bad log level", args: []string{"-config", cfg, "-gateway", "edge", "-log-level", "loud"}, wantCode: 2, wantErr: "unknown log level"},
		{name: "missing config", args: []string{"-config", filepath.Join(dir, "none.hcl"), "-gateway", "edge"}, wantCode: 1, wantErr: "read config"},
		{name: "unknown gateway", args: []string{"-config", cfg, "-gateway", "other"}, wantCode: 1, wantErr: `gateway "other" is not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"gateway"}, tt.args...), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
		})
	}
}

// TestRunGateway_Proxy runs the command against real Consul clusters filled
// the way the syncer fills them and proxies to a real backend.
func TestRunGateway_Proxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Consul servers (skipped in -short mode)")
	}
	public := harness.StartServer(t, "dc1")
	local := harness.StartServer(t, "gw1")
	gwTestTemplate(t, public)
	port := gwTestBackend(t)
	public.Register(t, harness.Instance{Node: "web-01", Address: "127.0.0.1", Service: "web", Port: port})
	gwTestMirror(t, local, "web-01", "web", port)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "gwsync.hcl")
	gwTestConfig(t, cfg, public.HTTPAddr(), local.HTTPAddr())
	snap := filepath.Join(dir, "resolver.snapshot")

	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &gwTestBuffer{}, &gwTestBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"gateway", "-config", cfg, "-gateway", "edge", "-listen", "127.0.0.1:0", "-snapshot", snap, "-log-level", "debug"}, stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	addrRe := regexp.MustCompile(`proxying on (http://\S+)`)
	var base string
	harness.Eventually(t, 10*time.Second, func() error {
		m := addrRe.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("no listen address yet; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		base = m[1]
		return nil
	})

	harness.Eventually(t, 10*time.Second, func() error {
		resp, body := gwTestGet(t, base+"/web/some/path")
		if resp.StatusCode != http.StatusOK || resp.Header.Get(refgw.SourceHeader) != "local" || body != "backend path=/some/path" {
			return fmt.Errorf("status %d source %q body %q", resp.StatusCode, resp.Header.Get(refgw.SourceHeader), body)
		}
		return nil
	})
	resp, body := gwTestGet(t, base+"/nothing-here/x")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no healthy instances") {
		t.Errorf("unknown service: %d %q; want 503 saying there are no instances", resp.StatusCode, body)
	}
	resp, body = gwTestGet(t, base+"/_gwsync/metrics")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `gwsync_resolver_lookups_total{result="ok",source="local"}`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics: %d, missing resolver or Go metrics:\n%s", resp.StatusCode, body)
	}
	resp, body = gwTestGet(t, base+"/_gwsync/healthz")
	var st gateway.Status
	if err := json.Unmarshal([]byte(body), &st); resp.StatusCode != http.StatusOK || err != nil || !st.LocalUsable {
		t.Errorf("healthz: %d %q (%v); want the resolver status with the local cluster usable", resp.StatusCode, body, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after cancel; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not stop after cancel")
	}
	done <- 0 // for the cleanup
	if b, err := os.ReadFile(snap); err != nil || !strings.Contains(string(b), `"web"`) {
		t.Fatalf("snapshot after shutdown: %q, %v; want it to hold web", b, err)
	}
}

func gwTestConfig(t *testing.T, path, publicAddr, localAddr string) {
	t.Helper()
	hcl := fmt.Sprintf(`
public {
  address = %q
  timeout = "2s"
}
gateway "edge" {
  source_datacenter = "dc1"
  dedicated {
    address = %q
  }
}
`, publicAddr, localAddr)
	if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
}

func gwTestTemplate(t *testing.T, s *harness.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := s.Client(t).PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name:     "gwsync-",
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service:  api.ServiceQuery{Service: "${name.suffix}", OnlyPassing: true},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
}

// gwTestMirror registers an instance in a dedicated cluster as the syncer
// does, and writes a fresh sync marker.
func gwTestMirror(t *testing.T, s *harness.Server, node, service string, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client(t)
	_, err := c.Catalog().Register(&api.CatalogRegistration{
		Node:    mirror.NodeName("gwsync-", "dc1", node),
		Address: "127.0.0.1",
		NodeMeta: map[string]string{
			mirror.MetaManaged: mirror.ManagedValue, mirror.MetaSourceDC: "dc1", mirror.MetaSourceNode: node,
			mirror.MetaGateway: "edge", mirror.MetaExternalNode: "true", mirror.MetaExternalProbe: "false",
		},
		Service: &api.AgentService{ID: service, Service: service, Address: "127.0.0.1", Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("mirror: %v", err)
	}
	// The records a complete sync writes with it, in one txn: the change
	// feed, the coverage (the resolver answers only covered services from
	// the mirror) and the marker.
	m := mirror.Marker{Version: mirror.MarkerVersion, Gateway: "edge", Generation: 1, SyncedAt: time.Now().UTC()}
	ch := mirror.Changes{}.Next("edge", []string{service}, true)
	cov := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: "edge", Shard: mirror.ShardOf(service), Seq: ch.Seq, Services: []string{service}}
	kv := func(key string, v []byte) *api.TxnOp {
		return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: v}}
	}
	ok, resp, _, err := c.Txn().Txn(api.TxnOps{
		kv(mirror.ChangesKey(mirror.DefaultKVPrefix, "edge"), ch.Encode()),
		kv(mirror.CoverageKey(mirror.DefaultKVPrefix, "edge", cov.Shard), cov.Encode()),
		kv(mirror.MarkerKey(mirror.DefaultKVPrefix, "edge"), m.Encode()),
	}, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || !ok {
		t.Fatalf("records: %v %+v", err, resp)
	}
}

func gwTestBackend(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend path=%s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	port, err := strconv.Atoi(srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func gwTestGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, string(b)
}

// gwTestBuffer is a bytes.Buffer safe to write from the command and read
// from the test.
type gwTestBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *gwTestBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *gwTestBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
