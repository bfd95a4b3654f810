package test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"
)

// TestRules_Lint: the rules file passes the rules lint and every alert has
// a severity, a summary and a runbook hint.
func TestRules_Lint(t *testing.T) {
	groups := loadRules(t)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !slices.Contains([]string{"warning", "critical"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if r.For == 0 {
				t.Errorf("%s: no `for`; one bad scrape would page", r.Alert)
			}
		}
	}
	// No successful sync, deletes held, public DC unreachable, stale
	// mirror, breaker open: each condition the issue names has an alert.
	for _, want := range []string{"GwsyncNoSuccessfulSync", "GwsyncDeletesHeld", "GwsyncPublicDCUnreachable", "GwsyncMirrorStale", "GwsyncResolverBreakerOpen",
		"GwsyncGatewayNoOwner", "GwsyncNoReplica", "GwsyncFencedWrites", "GwsyncReplicaConfigMismatch", "GwsyncSessionDown", "GwsyncEventPathSlow", "GwsyncInstanceProblems", "GwsyncPublicReadTokenFiltered"} {
		if !hasAlert(groups.Groups, want) {
			t.Errorf("no alert %s", want)
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts")
	}
}

func hasAlert(groups []rulefmt.RuleGroup, name string) bool {
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return true
			}
		}
	}
	return false
}

// TestRules_OneSource: the chart's PrometheusRule carries exactly the
// groups of the rules file, and deploy/prometheus and deploy/grafana hold
// the same bytes as the chart's files.
func TestRules_OneSource(t *testing.T) {
	for pub, inChart := range map[string]string{
		rulesFile:     chartDir + "/files/gwsync-rules.yaml",
		dashboardFile: chartDir + "/files/gwsync-dashboard.json",
	} {
		a, errA := os.ReadFile(pub)
		b, errB := os.ReadFile(inChart)
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s and %s differ (%v, %v)", pub, inChart, errA, errB)
		}
	}
	m := renderDecode(t, loadChart(t), "prometheusRule: {enabled: true}")
	fromChart, err := yaml.Marshal(m.rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var fileSpec map[string]any
	if err := yaml.Unmarshal(raw, &fileSpec); err != nil {
		t.Fatal(err)
	}
	var chartSpec map[string]any
	if err := yaml.Unmarshal(fromChart, &chartSpec); err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(fileSpec)
	b, _ := yaml.Marshal(chartSpec)
	if !bytes.Equal(a, b) {
		t.Errorf("PrometheusRule spec differs from %s:\n--- file\n%s\n--- chart\n%s", rulesFile, a, b)
	}
}
