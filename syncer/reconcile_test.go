package syncer

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
)

// The first full reconcile mirrors every selected service's answer, with
// its provenance, and writes coverage and marker with its last txn.
func TestSync_FirstCycle(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("consul", "n1", "consul", 8300))
	e.pub.register("dc2", inst("api", "m1", "api-1", 90))
	res := e.full()
	if !res.Complete || len(res.Errors)+len(res.Problems) > 0 {
		t.Fatalf("result %+v", res)
	}
	wantCounts(t, res, 3, 0, 0)
	wantKept(t, res, nil)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80")
	wantHeld(t, e.st, "api", mn("dc2", "m1")+"/api-1:90")
	wantHeld(t, e.st, "consul")
	if svc, _ := e.st.instance(mn("dc2", "m1"), "api-1"); svc.Meta[mirror.MetaFailovers] != "1" {
		t.Errorf("api answered by failover: meta %v, want %s=1", svc.Meta, mirror.MetaFailovers)
	}
	if n, _ := e.st.node(mn("dc2", "m1")); n.Meta[mirror.MetaSourceDC] != "dc2" || n.Meta[mirror.MetaGateway] != gw || n.Meta[mirror.MetaSourceNode] != "m1" {
		t.Errorf("node meta %v", n.Meta)
	}
	if got := e.st.covered(t); !slices.Equal(got, []string{"api", "web"}) {
		t.Errorf("coverage %q, want [api web]", got)
	}
	m := e.st.marker(t)
	if m == nil || m.Generation != 1 || m.Services != 2 || m.Instances != 3 || m.Gateway != gw || m.Replica != "r1" {
		t.Fatalf("marker %+v", m)
	}
	if res.MirroredServices != 2 || res.MirroredInstances != 3 {
		t.Errorf("mirrored %d/%d, want 2/3", res.MirroredServices, res.MirroredInstances)
	}
	if _, _, _, tmpl := e.st.stats(); tmpl != 1 {
		t.Errorf("local template written %d times, want 1", tmpl)
	}
	if st := e.ctl.Status().Gateways[0]; !st.Synced || !st.Vouching || st.Covered != 2 || st.Generation != 1 {
		t.Errorf("status %+v", st)
	}
	if !e.ctl.Ready() {
		t.Error("not ready after a complete sync")
	}
}

// Steady state writes nothing: no commit, no op, no marker rewrite, even
// though every answer comes back shuffled and the failover count of an
// instance answered from another DC drifts (nearest_n follows the WAN).
func TestSync_SteadyStateWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("web", "n3", "web-3", 80))
	e.pub.register("dc2", inst("api", "m1", "api-1", 90))
	e.full()
	commits, ops, _, tmpl := e.st.stats()
	seq := e.st.feed(t).Seq
	for i := range 3 {
		e.clock.Advance(time.Minute)
		if i == 1 { // api now reached after trying an unreachable DC first
			e.pub.locked(func() {
				e.pub.targets["dc1"] = []string{"dc3", "dc2"}
				e.pub.down["dc3"] = true
			})
		}
		res := e.full()
		if !res.Complete || len(res.Changes) > 0 || res.TxnOps > 0 {
			t.Fatalf("cycle %d: complete %v, changes %q, ops %d", i, res.Complete, changeStrings(res.Changes), res.TxnOps)
		}
	}
	if c, o, _, tm := e.st.stats(); c != commits || o != ops || tm != tmpl {
		t.Errorf("steady cycles committed %d times (%d ops), wrote the local template %d times", c-commits, o-ops, tm-tmpl)
	}
	if got := e.st.feed(t).Seq; got != seq {
		t.Errorf("change feed moved from %d to %d", seq, got)
	}
	if m := e.st.marker(t); m.Generation != 1 {
		t.Errorf("marker rewritten: %+v", m)
	}
}

// A DC that fails makes the cycle incomplete; nothing absent from it is
// deleted, and no marker or coverage is written.
func TestSync_FailingDCDeletesNothing(t *testing.T) {
	for broken, kept := range map[string]map[string]string{
		"down": {"api": "service not seen, but not every datacenter answered (dc2)", "pay": "service not seen, but not every datacenter answered (dc2)"},
		// pay is still visible: its answer (from dc2, filtered) is
		// written, and keeps every mirrored instance it may hide.
		"catalog filtered by ACLs": {"api": "service not seen, but not every datacenter answered (dc2)"},
		// A stale read still lists everything; the cycle is incomplete
		// all the same (nothing absent from it could be trusted).
		"catalog stale": {},
	} {
		t.Run(broken, func(t *testing.T) {
			e := newEnv(t)
			e.pub.register("dc1", inst("web", "n1", "web-1", 80))
			e.pub.register("dc2", inst("api", "m1", "api-1", 90), inst("pay", "m2", "pay-1", 70))
			e.full()
			gen := e.st.marker(t).Generation
			e.pub.locked(func() {
				switch broken {
				case "down":
					e.pub.down["dc2"] = true
				case "catalog stale":
					e.pub.stale["dc2"] = true
				default:
					e.pub.filtered["dc2"] = true
					e.pub.inst["dc2"][0].Hidden = true // api is invisible to the token
				}
			})
			res, err := e.sync(Request{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Complete {
				t.Error("a failover DC failing makes the cycle incomplete: the mirror is maintained all the same")
			}
			wantCounts(t, res, 0, 0, 0)
			wantKept(t, res, kept)
			wantHeld(t, e.st, "api", mn("dc2", "m1")+"/api-1:90")
			wantHeld(t, e.st, "pay", mn("dc2", "m2")+"/pay-1:70")
			wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
			if m := e.st.marker(t); m.Generation != gen {
				t.Errorf("marker rewritten by an incomplete cycle: %+v", m)
			}
			if got := counter(e.m.SyncRuns.WithLabelValues(gw, ScopeFull, runPartial)); got != 1 {
				t.Errorf("partial runs %v, want 1", got)
			}
		})
	}
}

// Issue 13, finding 1: with services.tags set, a DC that fails must not
// make a service whose required tag is registered only there look
// deselected (it was reproduced deleting 3 of 23 instances, under the
// mass-delete guard's threshold).
func TestSync_TagSelectionWithFailingDC(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Gateways[0].Services.Tags = []string{"public"}
		c.Safety = config.Safety{MaxDeleteFraction: 0.5, DeleteGuardMin: 5}
	})
	for s := range 5 {
		for i := range 4 {
			in := inst(fmt.Sprintf("svc%d", s), fmt.Sprintf("n%d", i), fmt.Sprintf("svc%d-%d", s, i), 80)
			in.Tags = []string{"public"}
			e.pub.register("dc1", in)
		}
	}
	// pay: three instances in dc1, tagged public only where it runs in dc2.
	for i := range 3 {
		e.pub.register("dc1", inst("pay", fmt.Sprintf("n%d", i), fmt.Sprintf("pay-%d", i), 70))
	}
	payDC2 := inst("pay", "m1", "pay-9", 70)
	payDC2.Tags = []string{"public"}
	e.pub.register("dc2", payDC2)
	e.pub.register("dc1", inst("internal", "n9", "internal-1", 60)) // never selected
	res := e.full()
	if res.MirroredInstances != 23 {
		t.Fatalf("mirrored %d instances, want 23", res.MirroredInstances)
	}
	wantHeld(t, e.st, "internal")

	e.pub.failOp("catalog", "dc2", errors.New("rpc error: no path to datacenter"))
	res, err := e.sync(Request{})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 0, 0, 0)
	if res.DeletesHeld != 0 || !res.Complete {
		t.Errorf("held %d complete %v", res.DeletesHeld, res.Complete)
	}
	wantKept(t, res, map[string]string{"pay": "selection depends on tags and not every datacenter answered (dc2)"})
	wantHeld(t, e.st, "pay", mn("dc1", "n0")+"/pay-0:70", mn("dc1", "n1")+"/pay-1:70", mn("dc1", "n2")+"/pay-2:70")
	if res.MirroredInstances != 23 {
		t.Errorf("mirrored %d instances after the failing cycle, want 23", res.MirroredInstances)
	}
}

// Every gateway on a source DC shares one execution per service within
// the share window: public load does not grow with gateways.
func TestSync_SharedBetweenGateways(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.Query.ShareWindow = time.Minute
		c.Gateways = append(c.Gateways, config.Gateway{Name: "edge-2", SourceDatacenter: "dc1", Services: c.Gateways[0].Services})
	})
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	if _, err := e.sync(Request{Gateway: "edge-2"}); err != nil {
		t.Fatal(err)
	}
	if n := e.pub.count("execute", "dc1", "web"); n != 1 {
		t.Errorf("web executed %d times for two gateways, want 1", n)
	}
	if n := e.pub.count("catalog", "dc1"); n != 1 {
		t.Errorf("dc1 catalog read %d times for two gateways, want 1", n)
	}
	wantHeld(t, e.stores["edge-2"], "web", mn("dc1", "n1")+"/web-1:80")
	// A forced resync reads fresh.
	if _, err := e.sync(Request{Force: true}); err != nil {
		t.Fatal(err)
	}
	if n := e.pub.count("execute", "dc1", "web"); n != 2 {
		t.Errorf("a forced resync reused a shared answer (%d executions)", n)
	}
}

// A template that vanished from the source DC is recreated and the query
// run again; a template is otherwise checked once per templateRecheck.
func TestSync_TemplateRecreated(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	e.full()
	if n := e.pub.count("template", "dc1"); n != 1 {
		t.Errorf("template ensured %d times in two cycles, want 1", n)
	}
	e.clock.Advance(time.Minute)
	e.pub.locked(func() { e.pub.templates["dc1"] = false })
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	res := e.full()
	if len(res.Errors) > 0 || !res.Complete {
		t.Fatalf("result %+v", res)
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	if n := e.pub.count("template", "dc1"); n != 2 {
		t.Errorf("template ensured %d times, want 2", n)
	}
}

func TestDiscovery_Merge(t *testing.T) {
	tests := []struct {
		name string
		dcs  []map[string][]string
		want map[string][]string
	}{
		{name: "nothing", want: map[string][]string{}},
		{
			name: "a service without tags exists, with an empty non-nil tag list",
			dcs:  []map[string][]string{{"web": nil}},
			want: map[string][]string{"web": {}},
		},
		{
			name: "tags are the union across DCs, first seen first, without duplicates",
			dcs:  []map[string][]string{{"web": {"a", "b", "a"}, "db": {}}, {"web": {"c", "a"}, "api": {"x"}}, {"web": nil}},
			want: map[string][]string{"web": {"a", "b", "c"}, "db": {}, "api": {"x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := discovery{tags: map[string][]string{}}
			for _, services := range tt.dcs {
				d.merge(services)
			}
			if !reflect.DeepEqual(d.tags, tt.want) {
				t.Errorf("tags = %#v, want %#v", d.tags, tt.want)
			}
		})
	}
}

// Merging never writes into the callers' tag slices.
func TestDiscovery_MergeNoAliasing(t *testing.T) {
	first := make([]string, 1, 4)
	first[0] = "a"
	d := discovery{tags: map[string][]string{}}
	d.merge(map[string][]string{"web": first})
	d.merge(map[string][]string{"web": {"b"}})
	if got := first[:2]; got[1] != "" {
		t.Errorf("merge appended into the first DC's slice: %q", got)
	}
	if !reflect.DeepEqual(d.tags["web"], []string{"a", "b"}) {
		t.Errorf("tags[web] = %q", d.tags["web"])
	}
}
