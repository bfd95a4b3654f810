package syncer

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// Entries gwsync does not own are never written: a node whose mirrored
// name is taken by a foreign node (or by another gateway's) is skipped
// and reported; the rest of its service is mirrored, and the cycle stays
// complete.
func TestSync_ForeignNodesNeverWritten(t *testing.T) {
	e := newEnv(t)
	foreign, other := mn("dc1", "n2"), mn("dc1", "n3")
	otherMeta := map[string]string{mirror.MetaManaged: mirror.ManagedValue, mirror.MetaGateway: "edge-sh"}
	e.st.putForeign(foreign, map[string]string{"team": "legacy"}, "legacy")
	e.st.putForeign(other, otherMeta, "web")
	fBefore, _ := e.st.node(foreign)
	oBefore, _ := e.st.node(other)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("web", "n3", "web-3", 80))

	for cycle := range 2 {
		res := e.full()
		if !res.Complete {
			t.Fatalf("cycle %d incomplete: %+v", cycle, res)
		}
		wantProblems(t, res, `instance "web-2": node name "`+foreign+`" is taken by an entry gwsync does not own`,
			`instance "web-3": node name "`+other+`" is taken by an entry gwsync does not own`)
		if cycle == 0 {
			wantCounts(t, res, 1, 0, 0)
		} else {
			wantCounts(t, res, 0, 0, 0)
		}
		for _, c := range res.Changes {
			if c.Node == foreign || c.Node == other {
				t.Errorf("cycle %d planned a change on a node gwsync does not own: %+v", cycle, c)
			}
		}
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	for name, before := range map[string]api.Node{foreign: fBefore, other: oBefore} {
		if ops := e.st.opsOn(name); len(ops) > 0 {
			t.Errorf("ops sent for %s: %+v", name, ops)
		}
		if after, _ := e.st.node(name); !reflect.DeepEqual(after, before) {
			t.Errorf("node %s changed: %+v -> %+v", name, before, after)
		}
	}
	if _, ok := e.st.instance(foreign, "legacy-1"); !ok {
		t.Error("the foreign node's own service is gone")
	}
	if svc, ok := e.st.instance(other, "web-1"); !ok || svc.Port != 1 {
		t.Errorf("the other gateway's instance changed: %+v %v", svc, ok)
	}
	if got := e.st.covered(t); !slices.Equal(got, []string{"web"}) {
		t.Errorf("coverage %q", got)
	}
}

// metaPairs returns n distinct meta pairs.
func metaPairs(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%02d", i)] = "v"
	}
	return m
}

// An instance the encoder refuses is skipped and reported; its service's
// other instances are written, its older mirrored version is kept, and the
// cycle stays complete.
func TestSync_UnmirrorableInstance(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("web", "n3", "web-3", 80))
	e.full()
	// web-1 gains 64 meta pairs (65 with gwsync's failover key), web-2's
	// node turns out to be a gwsync mirror node, web-3 really changes, and
	// two instances arrive, one on a node whose mirrored name cannot be
	// addressed.
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Meta = metaPairs(mirror.MaxMetaPairs) }, "web-1")
	e.pub.update("dc1", "web", func(i *fakeInst) {
		i.NodeMeta = map[string]string{mirror.MetaManaged: mirror.ManagedValue}
	}, "web-2")
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 }, "web-3")
	e.pub.register("dc1", inst("web", "a/./b", "web-4", 80), inst("web", "n5", "web-5", 80))

	res := e.full()
	if !res.Complete || len(res.Errors) > 0 {
		t.Fatalf("cycle incomplete: %+v", res)
	}
	wantProblems(t, res, `instance "web-1": instance "web-1" in dc1: service meta: 65 pairs with gwsync's keys, Consul allows 64`,
		`instance "web-2": `+mirror.ErrMirrored.Error(),
		`instance "web-4": node name "a/./b" cannot be addressed`)
	wantCounts(t, res, 1, 1, 0)
	wantKept(t, res, nil)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80", mn("dc1", "n3")+"/web-3:81", mn("dc1", "n5")+"/web-5:80")
	if svc, _ := e.st.instance(mn("dc1", "n1"), "web-1"); len(svc.Meta) != 1 {
		t.Errorf("web-1 was rewritten: meta %v", svc.Meta)
	}
	if got := counter(e.m.InstanceProblems.WithLabelValues(gw)); got != 3 {
		t.Errorf("instance problems metric %v, want 3", got)
	}
	if st := e.ctl.Status().Gateways[0]; st.Problems != 3 || st.LastProblem == "" {
		t.Errorf("status problems %d %q", st.Problems, st.LastProblem)
	}
	if got := e.st.covered(t); !slices.Equal(got, []string{"web"}) {
		t.Errorf("coverage %q", got)
	}
	if m := e.st.marker(t); m == nil || m.Generation != 2 || m.Instances != 4 {
		t.Errorf("marker %+v, want generation 2 with 4 instances", m)
	}
}

// Ops the dedicated cluster refuses are reported (a refused node takes its
// services with it); the rest lands, and the next cycle tries them again.
func TestSync_RejectedOps(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("web", "n3", "web-3", 80),
		inst("api", "n3", "api-3", 90))
	e.st.reject = func(o fakeOp) string {
		switch {
		case o.Verb == "service_set" && o.ID == "web-2":
			return "Invalid service meta"
		case o.Verb == "node_create" && o.Node == mn("dc1", "n3"):
			return "Invalid node meta"
		}
		return ""
	}
	res := e.full()
	if !res.Complete || len(res.Errors) > 0 {
		t.Fatalf("result %+v", res)
	}
	wantProblems(t, res, "service "+mn("dc1", "n2")+"/web-2 rejected by the dedicated cluster: Invalid service meta",
		"node "+mn("dc1", "n3")+"/ rejected by the dedicated cluster: Invalid node meta",
		"service "+mn("dc1", "n3")+"/web-3 rejected by the dedicated cluster: its node was rejected",
		"service "+mn("dc1", "n3")+"/api-3 rejected by the dedicated cluster: its node was rejected")
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	wantHeld(t, e.st, "api")
	if _, ok := e.st.node(mn("dc1", "n3")); ok {
		t.Error("the refused node exists")
	}
	if res.MirroredInstances != 1 {
		t.Errorf("model counts %d instances, the store holds 1", res.MirroredInstances)
	}

	e.st.mu.Lock()
	e.st.reject = nil
	e.st.mu.Unlock()
	res = e.full()
	wantCounts(t, res, 3, 0, 0)
	wantProblems(t, res)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80", mn("dc1", "n3")+"/web-3:80")
	wantHeld(t, e.st, "api", mn("dc1", "n3")+"/api-3:90")
}

// Instance data is preserved exactly, and what Consul hands back reads as
// what was written: the second cycle writes nothing.
func TestSync_InstanceDataPreserved(t *testing.T) {
	e := newEnv(t)
	in := inst("web", "n1", "web-1", 8080)
	in.Tags, in.Meta = []string{"b", "a"}, map[string]string{"version": "2"}
	in.NodeMeta = map[string]string{"rack": "r1", mirror.MetaSourceDC: "spoofed"}
	e.pub.register("dc1", in)
	e.full()
	svc, _ := e.st.instance(mn("dc1", "n1"), "web-1")
	if !slices.Equal(svc.Tags, []string{"b", "a"}) || svc.Port != 8080 || svc.Service != "web" ||
		!maps.Equal(svc.Meta, map[string]string{"version": "2", mirror.MetaFailovers: "0"}) || svc.Weights != (api.AgentWeights{Passing: 1, Warning: 1}) {
		t.Errorf("instance %+v", svc)
	}
	n, _ := e.st.node(mn("dc1", "n1"))
	if n.Meta["rack"] != "r1" || n.Meta[mirror.MetaSourceDC] != "dc1" || n.Address != "10.0.0.1" {
		t.Errorf("node %+v", n)
	}
	commits, _, _, _ := e.st.stats()
	if res := e.full(); len(res.Changes) > 0 || res.TxnOps > 0 {
		t.Errorf("second cycle wrote %q", changeStrings(res.Changes))
	}
	if c, _, _, _ := e.st.stats(); c != commits {
		t.Errorf("second cycle committed %d times", c-commits)
	}
}

// A node's change (its address, which instances registered without one
// use) changes every instance on it for a reader: the change feed names
// their services, in both full and event-driven reconciles.
func TestSync_NodeChangeNamesItsServices(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("api", "n1", "api-1", 90), inst("db", "n2", "db-1", 5432))
	e.full()
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Addr = "10.0.0.9" })
	e.pub.update("dc1", "api", func(i *fakeInst) { i.Addr = "10.0.0.9" })
	res := e.full()
	if want := []string{`update node ` + mn("dc1", "n1") + `/ changed: address "10.0.0.1" -> "10.0.0.9"`}; !slices.Equal(changeStrings(res.Changes), want) {
		t.Fatalf("changes %q, want %q", changeStrings(res.Changes), want)
	}
	f := e.st.feed(t)
	if last := f.Recent[len(f.Recent)-1]; !slices.Equal(last.Services, []string{"api", "web"}) {
		t.Errorf("the feed's last change lists %v, want [api web]", last.Services)
	}

	// The same through an event-driven reconcile of one service: the
	// other service on the node changes too.
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Addr = "10.0.0.7" })
	e.pub.update("dc1", "api", func(i *fakeInst) { i.Addr = "10.0.0.7" })
	if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	f = e.st.feed(t)
	if last := f.Recent[len(f.Recent)-1]; !slices.Equal(last.Services, []string{"api", "web"}) {
		t.Errorf("the feed's last change lists %v, want [api web]", last.Services)
	}
}
