package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/consul"
	"github.com/gwsync/gwsync/test/harness"
)

// testReadTokenCheck: the controller checks the gateways' public read
// token in every public DC. With the least-privilege read policy nothing
// is filtered; with read denied on sec-pay (registered in dc1 only) or on
// its node, dc1's gauge is 1 and the warning names sec-pay, dc2's stays 0;
// with the full policy back, dc1's is 0 again (a subtest of TestACLTLS:
// ACLs with default deny, TLS, the least-privilege tokens).
func testReadTokenCheck(t *testing.T, e *secureEnv) {
	cfg, err := config.Load(e.cfg, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs, reg := &logSink{}, prometheus.NewRegistry()
	e.collect("read token check log", logs.String)
	rc, err := consul.NewReadCheck(cfg, logs.logger("gwsync"), reg)
	if err != nil {
		t.Fatal(err)
	}
	checkIs := func(want map[string]float64) error {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := rc.Check(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
		for dc, v := range want {
			if got, ok := readTokenGauge(t, reg, dc); !ok || got != v {
				return fmt.Errorf("gwsync_public_read_token_filtered{dc=%q} = %v (exported %t), want %v; log:\n%s", dc, got, ok, v, logs)
			}
		}
		return nil
	}
	if err := checkIs(map[string]float64{"dc1": 0, "dc2": 0}); err != nil {
		t.Fatalf("least-privilege read policy: %v", err)
	}

	p := &e.publicRead
	t.Cleanup(func() { e.setPolicy(t, p, p.render(-1)) })
	// sec-pay (dc1 only, on node n4) hidden by a service rule, then by a
	// node rule: catalog/services hides a service on a node the token
	// may not read too.
	for i, deny := range []string{`service "sec-pay" { policy = "deny" }`, `node "n4" { policy = "deny" }`} {
		e.setPolicy(t, p, p.render(-1, deny))
		harness.Eventually(t, waitTimeout, func() error { return checkIs(map[string]float64{"dc1": 1, "dc2": 0}) })
		warn := linesWith(logs.String(), "[WARN]", "filtered by ACLs")
		if len(warn) != i+1 {
			t.Fatalf("%s: %d warnings, want %d:\n%s", deny, len(warn), i+1, logs)
		}
		for _, want := range []string{"dc=dc1", "hidden=1", "services=sec-pay", "get no instances"} {
			if !strings.Contains(warn[i], want) {
				t.Errorf("%s: warning without %q: %s", deny, want, warn[i])
			}
		}
		// Checked again, unchanged: no new warning.
		if err := checkIs(map[string]float64{"dc1": 1}); err != nil {
			t.Fatal(err)
		}
		if n := len(linesWith(logs.String(), "[WARN]")); n != i+1 {
			t.Fatalf("%s: %d warnings after an unchanged check, want %d:\n%s", deny, n, i+1, logs)
		}

		e.setPolicy(t, p, p.render(-1))
		harness.Eventually(t, waitTimeout, func() error { return checkIs(map[string]float64{"dc1": 0, "dc2": 0}) })
		if n := len(linesWith(logs.String(), "[INFO]", "sees every service again", "dc=dc1")); n != i+1 {
			t.Fatalf("%s: %d info lines for the filter clearing, want %d:\n%s", deny, n, i+1, logs)
		}
	}
}

// readTokenGauge is the read-token gauge of dc, and whether it exists.
func readTokenGauge(t *testing.T, g prometheus.Gatherer, dc string) (float64, bool) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "gwsync_public_read_token_filtered" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dc" && l.GetValue() == dc {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// linesWith returns the lines of log that contain every one of subs.
func linesWith(log string, subs ...string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}
