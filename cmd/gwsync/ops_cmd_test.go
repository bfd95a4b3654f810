package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
	"github.com/gwsync/gwsync/test/harness"
)

const opsToken = "ops-test-token"

// gwsync runs the CLI in-process and returns exit code, stdout and stderr.
func gwsync(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func mirrorPort(t *testing.T, srv *harness.Server, service, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := (&api.QueryOptions{NodeMeta: map[string]string{mirror.MetaManaged: mirror.ManagedValue}}).WithContext(ctx)
	entries, _, err := srv.Client(t).Catalog().Service(service, "", q)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.ServiceID == id {
			return e.ServicePort
		}
	}
	return 0
}

// TestOps runs status, diff and resync against a running controller with
// real Consul (public dc1+dc2, one gateway gw1).
func TestOps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Consul servers: skipped with -short")
	}
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	dc1.Register(t, harness.Instance{Node: "n1", Address: "10.0.0.1", ID: "web-1", Service: "web", Port: 8080})
	dc1.Register(t, harness.Instance{Node: "n2", Address: "10.0.0.2", ID: "web-2", Service: "web", Port: 8080})
	env := admintest.Start(t, admintest.Setup{Public: fed, Gateways: []string{"gw1"}, Include: []string{"web"}, Token: opsToken})
	gw1 := env.Dedicated["gw1"]
	auth := []string{"-addr", env.Addr, "-token", opsToken}

	t.Run("StatusTable", func(t *testing.T) {
		code, out, errs := gwsync(t, "status", "-addr", env.Addr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		for _, re := range []string{`(?m)^ready: yes$`,
			`(?m)^GATEWAY\s+SOURCE DC\s+OWNER\s+SYNCED\s+VOUCHING\s+GENERATION\s+SERVICES\s+COVERED\s+INSTANCES\s+PROBLEMS\s+DELETES HELD\s+LAST SUCCESS\s+LAST ERROR$`,
			`(?m)^gw1\s+dc1\s+this replica\s+yes\s+yes\s+1\s+1\s+1\s+2\s+0\s+0\s+(just now|\d+s ago)\s+-$`,
			`(?m)^PUBLIC DC\s+LAST OK\s+FAILURES\s+BACKING OFF UNTIL\s+LAST ERROR$`, `(?m)^dc1\s+(just now|\d+s ago)\s+0\s+-\s+-$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Fatalf("status output does not match %s:\n%s", re, out)
			}
		}
	})

	t.Run("StatusJSONFromEnv", func(t *testing.T) {
		t.Setenv(envAddr, env.URL)
		code, out, errs := gwsync(t, "status", "-format=json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var st admin.StatusResponse
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status -format=json does not parse: %v\n%s", err, out)
		}
		if !st.Ready || len(st.Gateways) != 1 || st.Gateways[0].Name != "gw1" || st.Gateways[0].Instances != 2 || len(st.Datacenters) == 0 {
			t.Fatalf("status = %+v", st)
		}
	})

	t.Run("ResyncWithoutTokenIsRefused", func(t *testing.T) {
		dc1.Register(t, harness.Instance{Node: "n1", Address: "10.0.0.1", ID: "web-1", Service: "web", Port: 8081})
		code, out, errs := gwsync(t, "resync", "-addr", env.Addr, "-gateway", "gw1", "-wait")
		if code != 1 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "401 Unauthorized: missing admin token") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if p := mirrorPort(t, gw1, "web", "web-1"); p != 8080 {
			t.Fatalf("refused resync changed the mirror: port %d", p)
		}
	})

	t.Run("DiffShowsThePendingChange", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"diff", "-gateway", "gw1"}, auth...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		want := "gateway gw1: 0 adds, 1 update, 0 deletes (instances)\nselection: include [web], exclude [consul]\n  update  service  gwsync-dc1.n1/web-1 (web)  changed: port 8080 -> 8081\n"
		if out != want {
			t.Fatalf("diff output:\n%s\nwant:\n%s", out, want)
		}
		code, out, _ = gwsync(t, append([]string{"diff", "-gateway", "gw1", "-format", "json"}, auth...)...)
		var res struct {
			Updates int `json:"updates"`
		}
		if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Updates != 1 {
			t.Fatalf("diff -format json: exit %d, %v, %s", code, err, out)
		}
	})

	t.Run("ResyncWaitPlainLines", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"resync", "-gateway", "gw1", "-service", "web", "-force", "-wait"}, auth...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s\n%s", code, out, errs)
		}
		for _, re := range []string{`(?m)^resync [0-9a-f]{12} accepted: service web of gateway gw1, forced$`,
			`(?m)^gw1: succeeded: 0 adds, 1 update, 0 deletes$`, `(?m)^resync [0-9a-f]{12} succeeded in \S+$`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Fatalf("resync output does not match %s:\n%s", re, out)
			}
		}
		if strings.Contains(out, "\r") {
			t.Fatalf("progress bar drawn on a non-terminal:\n%q", out)
		}
		if p := mirrorPort(t, gw1, "web", "web-1"); p != 8081 {
			t.Fatalf("after resync: port %d, want 8081", p)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		ln.Close()
		for _, tc := range []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{name: "unreachable", args: []string{"status", "-addr", closed}, code: 1, stderr: "gwsync status: cannot reach the gwsync controller at http://" + closed + ": "},
			{name: "unknown gateway", args: append([]string{"resync", "-gateway", "nope"}, auth...), code: 1, stderr: `gwsync resync: controller answered 404 Not Found: unknown gateway "nope" (known: [gw1])`},
			{name: "diff unknown gateway", args: append([]string{"diff", "-gateway", "nope"}, auth...), code: 1, stderr: `unknown gateway "nope" (known: [gw1])`},
			{name: "service without gateway", args: []string{"resync", "-service", "web"}, code: 2, stderr: "gwsync resync: -service needs -gateway"},
			{name: "diff without gateway", args: []string{"diff"}, code: 2, stderr: "gwsync diff: -gateway is required"},
			{name: "bad format", args: []string{"status", "-format", "xml"}, code: 2, stderr: `unknown -format "xml"`},
			{name: "positional argument", args: []string{"status", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, _, errs := gwsync(t, tc.args...)
				if code != tc.code || !strings.Contains(errs, tc.stderr) {
					t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.stderr)
				}
				if code == 1 && strings.Count(errs, "\n") != 1 {
					t.Fatalf("error is not one line: %q", errs)
				}
			})
		}
	})
}

func TestProgress_Update(t *testing.T) {
	running := admin.Resync{State: admin.StateRunning, Done: 3, Total: 10, Gateways: []admin.ResyncGateway{
		{Gateway: "gw1", State: admin.StateSucceeded, Done: 2, Total: 2},
		{Gateway: "gw2", State: admin.StateRunning, Done: 1, Total: 8},
		{Gateway: "gw3", State: admin.StatePending},
	}}
	for _, tc := range []struct {
		name     string
		terminal bool
		updates  []admin.Resync
		want     string
	}{
		{name: "terminal bar", terminal: true, updates: []admin.Resync{running},
			want: "\r[#########.....................] 3/10 services  gateway gw2 (2/3)\x1b[K\n"},
		{name: "plain lines once per change", updates: []admin.Resync{running, running},
			want: "gw1: succeeded, 2/2 services read\ngw2: running, 1/8 services read\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			p := newProgress(&b, tc.terminal)
			for _, u := range tc.updates {
				p.update(u)
			}
			p.end()
			if b.String() != tc.want {
				t.Fatalf("progress output %q, want %q", b.String(), tc.want)
			}
		})
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is not a terminal")
	}
}

// TestOps_Replicas runs two controller replicas that share two gateways
// through their locks (real Consul): r1 writes gw1, r2 writes gw2. Status
// names the owners; a diff or resync of gw2 sent to r1 is refused naming
// r2, and -follow sends it to r2.
func TestOps_Replicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Consul servers: skipped with -short")
	}
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1 := fed.Server("dc1")
	dc1.Register(t, harness.Instance{Node: "n1", Address: "10.0.0.1", ID: "web-1", Service: "web", Port: 8080})
	env := admintest.Start(t, admintest.Setup{Public: fed, Gateways: []string{"gw1", "gw2"}, Include: []string{"web"},
		Token: opsToken, Replicas: []string{"r1", "r2"}})
	r1, r2 := env.Replicas[0], env.Replicas[1]
	at1 := []string{"-addr", r1.Addr, "-token", opsToken}

	code, out, errs := gwsync(t, "status", "-addr", r1.Addr)
	for _, re := range []string{`(?m)^replica: r1 \(mixed: writes 1 of 2 gateways\)$`, `(?m)^gw1\s+dc1\s+this replica\s+yes\s+yes\s`,
		`(?m)^gw2\s+dc1\s+r2 at ` + regexp.QuoteMeta(r2.Addr) + `\s+-\s+-\s`} {
		if code != 0 || !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("status at r1 (exit %d, %s) does not match %s:\n%s", code, errs, re, out)
		}
	}

	dc1.Register(t, harness.Instance{Node: "n1", Address: "10.0.0.1", ID: "web-1", Service: "web", Port: 8081})
	code, out, errs = gwsync(t, append([]string{"diff", "-gateway", "gw2"}, at1...)...)
	if code != 1 || out != "" || !strings.Contains(errs, "409 Conflict: gateway gw2 is written by replica r2 (admin API at "+r2.Addr+"), not by this replica (r1)") {
		t.Fatalf("diff of gw2 at r1: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = gwsync(t, append([]string{"diff", "-gateway", "gw2", "-follow"}, at1...)...)
	if want := "gateway gw2: 0 adds, 1 update, 0 deletes (instances)\nselection: include [web], exclude [consul]\n  update  service  gwsync-dc1.n1/web-1 (web)  changed: port 8080 -> 8081\n"; code != 0 || out != want {
		t.Fatalf("diff -follow of gw2 at r1: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}

	code, out, errs = gwsync(t, append([]string{"resync", "-wait", "-follow"}, at1...)...)
	for _, re := range []string{`(?m)^gw2: written by replica r2: resync [0-9a-f]{12} accepted at ` + regexp.QuoteMeta(r2.Addr) + `$`,
		`(?m)^gw1: succeeded: 0 adds, 1 update, 0 deletes$`, `(?m)^gw2: succeeded: 0 adds, 1 update, 0 deletes$`} {
		if code != 0 || !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("resync -follow at r1 (exit %d, %q) does not match %s:\n%s", code, errs, re, out)
		}
	}
	for _, gw := range []string{"gw1", "gw2"} {
		if p := mirrorPort(t, env.Dedicated[gw], "web", "web-1"); p != 8081 {
			t.Fatalf("%s after the resync: port %d, want 8081", gw, p)
		}
	}
}

// A result with changes past the listed ones says how many, and is not
// "no changes".
func TestPrintDiff_ChangesOmitted(t *testing.T) {
	var b strings.Builder
	printDiff(&b, admin.Result{Gateway: "gw1", Adds: 1002, Changes: []admin.Change{{Op: "add", Kind: "node", Node: "n1", Reason: "new"}}, ChangesOmitted: 1001})
	out := b.String()
	if !strings.Contains(out, "... and 1001 more changes not listed (the counts above are exact)") || strings.Contains(out, "no changes") {
		t.Errorf("output:\n%s", out)
	}
}
