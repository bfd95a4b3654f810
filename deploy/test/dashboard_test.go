package test

import (
	"strings"
	"testing"
)

// TestDashboard_Valid: the dashboard parses, every query is valid PromQL
// against the chosen data source, panel IDs are unique, and it covers what
// an operator watches.
func TestDashboard_Valid(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed for provisioning", d.UID, d.Title)
	}
	ids := map[int]string{}
	titles := map[string]bool{}
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		titles[p.Title] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p.Title)
		}
		for _, tg := range p.Targets {
			if _, err := metricNames(grafanaToPromQL(tg.Expr)); err != nil {
				t.Errorf("panel %q target %s: %v", p.Title, tg.RefID, err)
			}
		}
	}
	// What the issue asks the dashboard to show, by the metric that shows it.
	used := usedMetrics(t)
	for _, want := range []string{
		"gwsync_sync_runs_total", "gwsync_sync_duration_seconds_bucket", // sync success/failure, duration
		"gwsync_public_requests_total", "gwsync_public_request_duration_seconds_bucket", // public rate, errors, latency
		"gwsync_dedicated_writes_total",                         // writes per op
		"gwsync_mirrored_services", "gwsync_mirrored_instances", // mirror size
		"gwsync_deletes_held", "gwsync_mirror_age_seconds", // deletes held, data age
		"gwsync_resolver_lookups_total", "gwsync_resolver_breaker_state", // resolver
	} {
		found := false
		for _, where := range used[want] {
			found = found || strings.HasPrefix(where, "panel ")
		}
		if !found {
			t.Errorf("no panel shows %s", want)
		}
	}
}
