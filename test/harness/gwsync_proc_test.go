package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGwsync_Lifecycle: a `gwsync run` process is started (its admin API
// found in its log), scraped, killed with SIGKILL, restarted on a new
// admin port, and stopped cleanly with SIGTERM. Its Consul clusters do not
// exist: the process serves its admin API before it reaches any.
func TestGwsync_Lifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gwsync binary")
	}
	dir := t.TempDir()
	bin, err := BuildGwsync(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gwsync.hcl")
	hcl := "public {\n  address = \"127.0.0.1:1\"\n  timeout = \"1s\"\n}\n" +
		"admin {\n  address = \"127.0.0.1:0\"\n}\n" +
		"gateway \"g\" {\n  source_datacenter = \"dc1\"\n  dedicated {\n    address = \"127.0.0.1:2\"\n  }\n}\n"
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	g := StartGwsync(t, bin, "run", "-config", cfg, "-replica", "lifecycle")
	first := g.Admin()
	if first == "" || !g.Running() {
		t.Fatalf("started: admin %q, running %v", first, g.Running())
	}
	// A gauge every controller registers, per gateway, at start.
	if v := g.Metric(t, "gwsync_mirrored_instances", map[string]string{"gateway": "g"}); v != 0 {
		t.Fatalf("gwsync_mirrored_instances{gateway=g} = %v, want 0 (nothing reachable)", v)
	}

	g.Kill(t)
	if g.Running() {
		t.Fatal("running after Kill")
	}
	g.Restart(t)
	if !g.Running() || g.Admin() == "" {
		t.Fatalf("restarted: admin %q, running %v", g.Admin(), g.Running())
	}
	if _, err := g.metric("gwsync_mirrored_instances", nil); err != nil {
		t.Fatalf("scrape after the restart: %v", err)
	}
	g.Stop(t, 30*time.Second)
	if g.Running() {
		t.Fatal("running after Stop")
	}
	if logs := g.Logs(); !strings.Contains(logs, "--- run 1 ---") || !strings.Contains(logs, "--- run 2 ---") {
		t.Fatalf("logs of both runs expected:\n%s", logs)
	}
}
