package e2e

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// ruleCase is the removal of one rule from one policy: how gwsync is run
// without it, and what it must then report.
type ruleCase struct {
	policy *aclPolicy
	rule   int
	// probe runs gwsync with the reduced policy; it returns once what
	// gwsync reported (errors, results, status, logs) contains want.
	probe func(t *testing.T, e *secureEnv, want string) string
	want  string
	// check, if set, asserts more of the outcome.
	check func(t *testing.T, e *secureEnv, report string)
}

// testLeastPrivilegeRules removes each rule of each policy in turn and
// runs the part of gwsync that holds the token. Without a write rule
// gwsync fails with Consul's own 403 text, which names the permission;
// without a read rule Consul answers 200 with fewer results, and gwsync
// keeps what it mirrored (or falls back) and says which permission the
// filtered read lacked. Nothing is ever deleted.
func testLeastPrivilegeRules(t *testing.T, e *secureEnv) {
	e.converge(t)
	cases := []ruleCase{
		{policy: &e.publicController, rule: 0, probe: probeController, want: "catalog filtered by ACLs", check: keptIncomplete},
		{policy: &e.publicController, rule: 1, probe: probeController, want: "catalog filtered by ACLs", check: keptIncomplete},
		{policy: &e.publicController, rule: 2, probe: probeController, want: `lacks permission 'query:write' on "gwsync-"`},
		{policy: &e.publicRead, rule: 0, probe: probeResolver, want: "node:read or service:read", check: publicFiltered},
		{policy: &e.publicRead, rule: 1, probe: probeResolver, want: "node:read or service:read", check: publicFiltered},
		{policy: &e.dedicatedController, rule: 0, probe: probeController, want: `lacks node:write on nodes named "gwsync-*"`},
		{policy: &e.dedicatedController, rule: 1, probe: probeController, want: "lacks service:write on the mirrored services"},
		{policy: &e.dedicatedController, rule: 2, probe: probeController, want: `lacks permission 'key:write' on "gwsync/replicas/e2e"`},
		{policy: &e.dedicatedController, rule: 2, probe: probeStore, want: "lacks key:write on gwsync/gateways/gw1/"},
		{policy: &e.dedicatedController, rule: 3, probe: probeController, want: `lacks permission 'session:write'`},
		{policy: &e.dedicatedController, rule: 4, probe: probeController, want: `lacks permission 'query:write' on "gwsync-"`},
		{policy: &e.dedicatedRead, rule: 0, probe: probeResolver, want: "node:read or service:read", check: localFallsBack},
		{policy: &e.dedicatedRead, rule: 1, probe: probeResolver, want: "node:read or service:read", check: localFallsBack},
		{policy: &e.dedicatedRead, rule: 2, probe: probeResolver, want: "hidden by ACLs (the read token lacks key:read on gwsync/gateways/gw1/)", check: localFallsBack},
	}
	covered := map[*aclPolicy]int{}
	for _, c := range cases {
		covered[c.policy]++
		t.Run(ruleCaseName(c), func(t *testing.T) {
			before := e.mirrorState(t)
			t.Cleanup(func() { e.setPolicy(t, c.policy, c.policy.render(-1)) })
			e.setPolicy(t, c.policy, c.policy.render(c.rule))
			report := c.probe(t, e, c.want)
			if c.check != nil {
				c.check(t, e, report)
			}
			if got := e.mirrorState(t); !sameMirror(got, before) {
				t.Fatalf("the mirror changed without %s: %v, was %v", c.policy.rules[c.rule], got, before)
			}
		})
	}
	for _, p := range []*aclPolicy{&e.publicController, &e.publicRead, &e.dedicatedController, &e.dedicatedRead} {
		if covered[p] < len(p.rules) {
			t.Errorf("policy %s: %d rules, only %d cases", p.name, len(p.rules), covered[p])
		}
	}
	t.Run("unmanaged template needs query read only", func(t *testing.T) { testUnmanagedTemplate(t, e) })
}

// testUnmanagedTemplate: with query.manage = false gwsync only lists the
// public template, so query read on its prefix is enough; without any
// query rule the template is hidden and gwsync says it cannot find it.
func testUnmanagedTemplate(t *testing.T, e *secureEnv) {
	p := &e.publicController
	path := e.writeConfig(t, "unmanaged.hcl", configOpts{ca: e.ca, unmanaged: true})
	t.Cleanup(func() { e.setPolicy(t, p, p.render(-1)) })
	for _, c := range []struct {
		rule string
		want string // "" for a complete reconcile
	}{
		{`query_prefix "gwsync-" { policy = "read" }`, ""},
		{"", `template query "gwsync-" not found`},
	} {
		e.setPolicy(t, p, p.render(2, c.rule))
		ctrl, _ := e.newController(t, path, &logSink{}, false)
		res, err := syncGW1(t, ctrl)
		report := describeResult(res, err)
		switch {
		case c.want == "" && (err != nil || !res.Complete):
			t.Errorf("manage = false with %q: want a complete reconcile:\n%s", c.rule, report)
		case c.want != "" && !strings.Contains(report, c.want):
			t.Errorf("manage = false without a query rule: want %q:\n%s", c.want, report)
		}
	}
}

var ruleNameRe = regexp.MustCompile(`[^a-z0-9_-]+`)

func ruleCaseName(c ruleCase) string {
	rule := strings.Fields(c.policy.rules[c.rule])
	return strings.TrimPrefix(c.policy.name, "gwsync-") + "/" + ruleNameRe.ReplaceAllString(rule[0]+"_"+rule[1]+"_"+rule[len(rule)-2], "")
}

// probeController runs the controller as `gwsync run` does (HA lease
// first). Once it holds gw1's lock, it runs a full reconcile. The report
// is the reconcile's outcome and the controller's log.
func probeController(t *testing.T, e *secureEnv, want string) string {
	t.Helper()
	r := e.run(t, e.cfg)
	harness.Eventually(t, waitTimeout, func() error {
		if r.owns() || strings.Contains(unquote(r.logs.String()), want) {
			return nil
		}
		return fmt.Errorf("the controller neither holds gw1's lock nor logged %q; its log:\n%s", want, r.logs.String())
	})
	report := ""
	if r.owns() {
		res, err := syncGW1(t, r.c)
		report = describeResult(res, err) + "\n"
	}
	report += unquote(r.logs.String())
	if !strings.Contains(report, want) {
		t.Fatalf("report without %q:\n%s", want, report)
	}
	return report
}

// unquote undoes hclog's quoting of values inside log lines (\" for "),
// so a log reads as Consul's message did.
func unquote(log string) string { return strings.ReplaceAll(log, `\"`, `"`) }

// probeStore runs one full reconcile without HA, so the dedicated
// cluster's store meets the missing rule itself.
func probeStore(t *testing.T, e *secureEnv, want string) string {
	t.Helper()
	logs := &logSink{}
	c, _ := e.newController(t, e.cfg, logs, false)
	res, err := syncGW1(t, c)
	report := describeResult(res, err) + "\n" + unquote(logs.String())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("reconcile: %v; want an error containing %q\n%s", err, want, report)
	}
	return report
}

// probeResolver starts a resolver and looks up a service the mirror
// covers and one it does not. The report is the answers, the status and
// the resolver's log.
func probeResolver(t *testing.T, e *secureEnv, want string) string {
	t.Helper()
	r, logs := e.resolver(t, e.cfg, nil)
	web, errWeb := resolveOnce(r, "sec-web")
	other, errOther := resolveOnce(r, "other")
	report := fmt.Sprintf("sec-web: %d instances from %s, err %v\nother: %d instances from %s, err %v\nstatus %+v\n%s",
		len(web.Instances), web.Source, errWeb, len(other.Instances), other.Source, errOther, r.Status(), unquote(logs.String()))
	if !strings.Contains(report, want) {
		t.Fatalf("resolver report without %q:\n%s", want, report)
	}
	return report
}

func describeResult(res syncer.Result, err error) string {
	return fmt.Sprintf("error: %v\ncomplete %t, %d adds, %d updates, %d deletes (%d held)\nkept: %v\nerrors: %v\nproblems: %v",
		err, res.Complete, res.Adds, res.Updates, res.Deletes, res.DeletesHeld, res.Kept, res.Errors, res.Problems)
}

// keptIncomplete: a reconcile whose public reads were filtered is incomplete
// and keeps every mirrored service, with a reason.
func keptIncomplete(t *testing.T, _ *secureEnv, report string) {
	t.Helper()
	kept := ""
	for _, l := range strings.Split(report, "\n") {
		if k, ok := strings.CutPrefix(l, "kept: "); ok {
			kept = k
		}
	}
	for _, s := range []string{"sec-web:", "sec-api:", "sec-pay:"} {
		if !strings.Contains(report, "complete false") || !strings.Contains(kept, s) {
			t.Fatalf("want an incomplete reconcile that keeps every mirrored service, each with a reason:\n%s", report)
		}
	}
}

// publicFiltered: the resolver does not take the public cluster's
// filtered, empty answer for "no instances"; the mirror still serves.
//
// Consul 1.21 marks a prepared query's answer filtered only as the last
// DC it tried saw it: when the source DC's answer is filtered to nothing
// and the query fails over, the failover DC's answer (and its unfiltered
// mark) replaces it. "other" lives in both DCs, so both answers are
// filtered; a service only dc1 has comes back empty and unmarked, as the
// last check shows: a read token without node or service read cannot be
// told from an empty answer then (see the report to the lead).
func publicFiltered(t *testing.T, e *secureEnv, report string) {
	t.Helper()
	r, _ := e.resolver(t, e.cfg, nil)
	wantAnswer(t, r, "sec-web", gateway.SourceLocal, 8001, 8002)
	if a, err := resolveOnce(r, "other"); !errors.Is(err, gateway.ErrFilteredByACLs) || len(a.Instances) != 0 {
		t.Fatalf("other (uncovered): %d instances from %s, %v; want ErrFilteredByACLs, never \"none\"\n%s", len(a.Instances), a.Source, err, report)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c := e.dc1.ClientWithToken(t, e.tokens["public-read.token"])
	resp, meta, err := c.PreparedQuery().Execute("gwsync-sec-pay", (&api.QueryOptions{Datacenter: "dc1"}).WithContext(ctx))
	if err != nil || len(resp.Nodes) != 0 || meta.ResultsFilteredByACLs || resp.Failovers == 0 {
		t.Fatalf("Consul behaviour changed: sec-pay (dc1 only) with the reduced read token: %v, %d nodes, filtered mark %t, %d failovers; "+
			"was: empty, unmarked after failing over (the resolver could then rely on the mark)", err, len(resp.Nodes), meta.ResultsFilteredByACLs, resp.Failovers)
	}
}

// localFallsBack: without the mirror readable, a covered service comes
// from the public cluster, never as the mirror's "none".
func localFallsBack(t *testing.T, e *secureEnv, report string) {
	t.Helper()
	r, _ := e.resolver(t, e.cfg, nil)
	wantAnswer(t, r, "sec-web", gateway.SourcePublic, 8001, 8002)
	_ = report
}
