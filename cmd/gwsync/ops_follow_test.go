package main

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
)

// replicaPair runs two replicas' admin APIs over fake controllers: r1
// writes gw1, r2 writes gw2, nobody holds gw3. Both share the token.
func replicaPair(t *testing.T) (r1, r2 *admintest.FakeReplicas, addr1, addr2 string) {
	t.Helper()
	gws := []string{"gw1", "gw2", "gw3"}
	r1 = admintest.NewFakeReplicas("r1", nil, gws...)
	r2 = admintest.NewFakeReplicas("r2", nil, gws...)
	start := func(ctrl admin.Controller) string {
		return admintest.RunServer(t, admin.New(admin.Options{Controller: ctrl, Address: "127.0.0.1:0", Token: opsToken,
			Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}))
	}
	addr1, addr2 = start(r1), start(r2)
	for _, r := range []*admintest.FakeReplicas{r1, r2} {
		r.SetOwner("gw1", admin.Owner{Replica: "r1", Address: addr1})
		r.SetOwner("gw2", admin.Owner{Replica: "r2", Address: addr2})
	}
	return r1, r2, addr1, addr2
}

func gateways(calls []syncer.Request) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.Gateway)
	}
	return out
}

// TestOps_Follow: a resync or diff sent to a replica that does not write
// the gateway names the owner; -follow sends it there.
func TestOps_Follow(t *testing.T) {
	r1, r2, addr1, addr2 := replicaPair(t)
	at1 := []string{"-addr", addr1, "-token", opsToken}

	t.Run("refused, naming the owner", func(t *testing.T) {
		for _, args := range [][]string{{"diff", "-gateway", "gw2"}, {"resync", "-gateway", "gw2", "-wait"}} {
			code, out, errs := gwsync(t, append(args, at1...)...)
			want := "written by replica r2 (admin API at " + addr2 + "), not by this replica (r1): send the request there (ask it with -addr " + addr2 + ", or add -follow)\n"
			if code != 1 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasSuffix(errs, want) {
				t.Fatalf("%q: exit %d, stdout %q, stderr %q; want the owner named", args, code, out, errs)
			}
		}
		code, _, errs := gwsync(t, append([]string{"resync", "-gateway", "gw3", "-follow"}, at1...)...)
		if code != 1 || !strings.Contains(errs, "503 Service Unavailable: gateway gw3: no controller replica holds it right now") {
			t.Fatalf("resync of a gateway nobody holds: exit %d, stderr %q", code, errs)
		}
		if len(r1.Calls())+len(r2.Calls()) != 0 {
			t.Fatalf("refused requests ran syncs: r1 %v, r2 %v", r1.Calls(), r2.Calls())
		}
	})

	t.Run("diff followed", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"diff", "-gateway", "gw2", "-follow"}, at1...)...)
		if code != 0 || out != "gateway gw2: 0 adds, 0 updates, 0 deletes (instances)\nno changes: the mirror matches the source\n" ||
			errs != "gwsync diff: gateway written by replica r2: asking it at "+addr2+"\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if c := r2.Calls(); len(c) != 1 || !c[0].DryRun || c[0].Gateway != "gw2" || len(r1.Calls()) != 0 {
			t.Fatalf("calls: r1 %v, r2 %v", r1.Calls(), c)
		}
	})

	t.Run("resync of one gateway followed", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"resync", "-gateway", "gw2", "-force", "-follow", "-wait"}, at1...)...)
		if code != 0 || !regexp.MustCompile(`(?m)^gw2: succeeded: 0 adds, 0 updates, 0 deletes$`).MatchString(out) {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if c := r2.Calls(); len(c) != 2 || c[1].DryRun || !c[1].Force || c[1].Gateway != "gw2" || len(r1.Calls()) != 0 {
			t.Fatalf("calls: r1 %v, r2 %v", r1.Calls(), c)
		}
	})

	t.Run("resync of every gateway, not followed", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"resync", "-wait"}, at1...)...)
		for _, re := range []string{`(?m)^gw2: skipped: written by replica r2 at ` + regexp.QuoteMeta(addr2) + `$`,
			`(?m)^gw3: skipped: no replica holds it right now$`, `(?m)^gw1: succeeded: `} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Fatalf("output does not match %s:\n%s", re, out)
			}
		}
		if code != 1 || errs != "gwsync resync: 2 gateways written by other replicas not resynced: resync them there, or add -follow\n" {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		if got := gateways(r1.Calls()); len(got) != 1 || got[0] != "gw1" || len(r2.Calls()) != 2 {
			t.Fatalf("calls: r1 %v, r2 %v", got, gateways(r2.Calls()))
		}
	})

	t.Run("resync of every gateway, followed", func(t *testing.T) {
		code, out, errs := gwsync(t, append([]string{"resync", "-wait", "-follow"}, at1...)...)
		if !regexp.MustCompile(`(?m)^gw2: written by replica r2: resync [0-9a-f]{12} accepted at `+regexp.QuoteMeta(addr2)+`$`).MatchString(out) ||
			strings.Count(out, "succeeded: ") != 2 || code != 1 || !strings.Contains(errs, "1 gateway written by other replicas not resynced") {
			t.Fatalf("exit %d, stdout:\n%s\nstderr %q", code, out, errs)
		}
		if got := gateways(r2.Calls()); len(got) != 3 || got[2] != "gw2" {
			t.Fatalf("r2 calls: %v", got)
		}
		// Once gw3 has an owner, a followed resync of every gateway leaves nothing behind.
		for _, r := range []*admintest.FakeReplicas{r1, r2} {
			r.SetOwner("gw3", admin.Owner{Replica: "r2", Address: addr2})
		}
		if code, out, errs := gwsync(t, append([]string{"resync", "-wait", "-follow"}, at1...)...); code != 0 || strings.Count(out, "succeeded: ") != 3 {
			t.Fatalf("exit %d, stdout:\n%s\nstderr %q", code, out, errs)
		}
	})
}
