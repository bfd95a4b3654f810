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

// TestReadTokenCheck: the controller checks the gateways' public read
// token in every public DC. With the least-privilege read policy nothing
// is filtered; with read denied on sec-pay (registered in dc1 only) dc1's
// gauge is 1 and the warning names sec-pay, dc2's stays 0; with the full
// policy back, dc1's is 0 again. Real Consul with ACLs (default deny) and
// TLS, the tokens from the least-privilege policies.
func TestReadTokenCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("real Consul: skipped under -short")
	}
	e := startSecure(t)
	e.register(t)
	cfg, err := config.Load(e.cfg, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs, reg := &logSink{}, prometheus.NewRegistry()
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
	e.setPolicy(t, p, p.render(-1, `service "sec-pay" { policy = "deny" }`))
	harness.Eventually(t, waitTimeout, func() error { return checkIs(map[string]float64{"dc1": 1, "dc2": 0}) })
	warn := linesWith(logs.String(), "[WARN]", "filtered by ACLs")
	if len(warn) != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", len(warn), logs)
	}
	for _, want := range []string{"dc=dc1", "hidden=1", "services=sec-pay", "get no instances"} {
		if !strings.Contains(warn[0], want) {
			t.Errorf("warning without %q: %s", want, warn[0])
		}
	}
	// Checked again, unchanged: no new warning.
	if err := checkIs(map[string]float64{"dc1": 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(linesWith(logs.String(), "[WARN]")); n != 1 {
		t.Fatalf("%d warnings after an unchanged check, want 1:\n%s", n, logs)
	}

	e.setPolicy(t, p, p.render(-1))
	harness.Eventually(t, waitTimeout, func() error { return checkIs(map[string]float64{"dc1": 0, "dc2": 0}) })
	if len(linesWith(logs.String(), "[INFO]", "sees every service again", "dc=dc1")) != 1 {
		t.Fatalf("no info line when the filter cleared:\n%s", logs)
	}
	if got := secretsIn(logs.String(), e.tokens); len(got) > 0 {
		t.Fatalf("the log holds %v:\n%s", got, logs)
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
