package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gwsync/gwsync/test/harness"
)

// demoTimeout bounds the whole demo; it takes about 20s warm.
const demoTimeout = 5 * time.Minute

// buildGwsync builds the gwsync binary the demo runs, unless $GWSYNC_BIN
// names one (as in the deploy tests).
func buildGwsync(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("GWSYNC_BIN"); bin != "" {
		return bin
	}
	out, err := harness.BuildGwsync(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDemo is the demo's smoke test: it runs the whole demo against real
// Consul and real gwsync processes, checks what the demo printed, in order,
// and that no process it started is left.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real Consul servers and gwsync processes: skipped with -short")
	}
	o := options{gwsync: buildGwsync(t), consul: harness.ConsulBin(t), workdir: t.TempDir()}
	var mu sync.Mutex
	pids := map[int]string{}
	o.started = func(name string, pid int) {
		mu.Lock()
		pids[pid] = name
		mu.Unlock()
	}
	scrapes := map[string][]byte{}
	o.scraped = func(name string, b []byte) { scrapes[name] = b }
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	err := run(ctx, o, &out)
	t.Logf("demo took %s; output:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(o.workdir, "logs", "gwsync-*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", filepath.Base(l), b)
		}
		t.Fatalf("demo failed: %v", err)
	}
	got := out.String()
	// Each pattern must match, after the previous one.
	steps := []string{
		`dc1\s+public\s+http://127\.0\.0\.1:\d+`,
		`edge-b\s+dedicated\s+http://127\.0\.0\.1:\d+`,
		`api-1\s+service api\s+in dc2`,
		`r1: admin API on http://127\.0\.0\.1:\d+, ready, writes edge-a\n`,
		`r2: admin API on http://127\.0\.0\.1:\d+, ready, writes edge-b\n`,
		`replica: r1 \(mixed: writes 1 of 2 gateways\)`,
		`(?m)^\s+GATEWAY\s+SOURCE DC\s+OWNER\s+SYNCED\s+VOUCHING\s+GENERATION\s+SERVICES\s+COVERED\s+INSTANCES\s+PROBLEMS\s+DELETES HELD\s+LAST SUCCESS\s+LAST ERROR$`,
		// The generation depends on which replica took edge-a first (a new
		// owner of an unchanged mirror writes nothing, its count included).
		`(?m)^\s+edge-a\s+dc1\s+this replica\s+yes\s+yes\s+\d+\s+2\s+2\s+3\s+0\s+0\s+\S+( ago| now)\s+-$`,
		`(?m)^\s+edge-b\s+dc2\s+r2 at 127\.0\.0\.1:\d+(\s+-){10}$`,
		`GET /web/\s+-> 200 "hello from web-[12] \(dc1\)"  X-Gwsync-Source: local`,
		`GET /api/\s+-> 200 "hello from api-1 \(dc2\)"  X-Gwsync-Source: local`,
		// The event path: the change reaches the gateway in well under the
		// full reconcile's 5 minutes (the wait is bounded at 10s).
		`in edge-a's dedicated cluster after \d+(\.\d+)?m?s; answering through the gateway after \d+(\.\d+)?m?s \(\d+ requests\)`,
		`stopping replica r2 \(SIGTERM\)`,
		`r1 writes edge-a, edge-b, \d+(\.\d+)?m?s after the stop`,
		`replica: r1 \(owner: writes every gateway\)`,
		`(?m)^\s+edge-b\s+dc2\s+this replica\s+yes\s+yes\s+`,
		`killing edge-a's dedicated Consul`,
		`source switched to the public cluster after \d+ requests, 0 of them failed`,
		// Issue 9 item 6: both answers come from the public cluster (the demo
		// waits, with a deadline, for each service to switch).
		`GET /web/\s+-> 200 "hello from web-[124] \(dc1\)"  X-Gwsync-Source: public`,
		`GET /api/\s+-> 200 "hello from api-1 \(dc2\)"  X-Gwsync-Source: public`,
		`restarting edge-a's dedicated Consul`,
		`local again \d+(\.\d+)?m?s after the restart`,
		`GET /web/\s+-> 200 "hello from web-[124] \(dc1\)"  X-Gwsync-Source: local`,
		`GET /api/\s+-> 200 "hello from api-1 \(dc2\)"  X-Gwsync-Source: local`,
		`edge-a: succeeded: 0 adds, 0 updates, 0 deletes`,
		`resync [0-9a-f]{12} succeeded`,
		`(?m)^\s+edge-a\s+dc1\s+this replica\s+yes\s+yes\s+\d+\s+2\s+2\s+4\s+0\s+0\s+`,
		`gateway\s+gwsync_resolver_lookups_total\{result="ok",source="local"\} [1-9]`,
		`gateway\s+gwsync_resolver_lookups_total\{result="ok",source="public"\} [1-9]`,
		`controller gwsync_mirrored_instances\{gateway="edge-a"\} 4`,
		`demo finished`,
		`all stopped`,
	}
	rest := got
	for _, s := range steps {
		loc := regexp.MustCompile(s).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("demo output lacks %q after the previous steps; remaining output:\n%s", s, rest)
		}
		rest = rest[loc[1]:]
	}
	// The resolver's and the controller's expositions pass the metrics
	// linter (the one promtool check metrics runs).
	for _, name := range []string{"gateway", "controller"} {
		b := scrapes[name]
		if len(b) == 0 {
			t.Fatalf("no %s scrape", name)
		}
		problems, err := promlint.New(bytes.NewReader(b)).Lint()
		if err != nil {
			t.Fatalf("lint %s metrics: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("promlint %s: %s: %s", name, p.Metric, p.Text)
		}
	}
	if strings.Contains(got, "\r") {
		t.Fatal("progress bar drawn on a non-terminal")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pids) < 8 { // 4 Consul servers, 1 restart, 2 controller replicas, gateway
		t.Fatalf("demo reported %d processes: %v", len(pids), pids)
	}
	for pid, name := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still running after the demo", name, pid)
		}
	}
}
