package syncer

import (
	"fmt"
	"testing"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/mirror"
)

func planWithDeletes(n int) Plan {
	p := Plan{ServiceSets: []mirror.Service{{Node: "n", ServiceData: mirror.ServiceData{ID: "new", Name: "web"}}},
		Changes: []Change{{Op: OpAdd, Kind: KindService}}}
	for i := range n {
		k := mirror.Key{Node: "n", ID: fmt.Sprintf("i%d", i)}
		p.ServiceDeletes = append(p.ServiceDeletes, ServiceDelete{Key: k, Name: "web"})
		p.Removed = append(p.Removed, k)
		p.Changes = append(p.Changes, Change{Op: OpDelete, Kind: KindService})
	}
	p.DeleteInstances = n
	return p
}

func TestGuard(t *testing.T) {
	safety := config.Safety{MaxDeleteFraction: 0.5, DeleteGuardMin: 5}
	tests := []struct {
		name       string
		deletes    int
		in         GuardInput
		wantHeld   int
		wantForced int
		wantReason bool
	}{
		{name: "no deletes", deletes: 0, in: GuardInput{Mirrored: 10}},
		{name: "not synced, partial read holds", deletes: 1, in: GuardInput{FullScope: true, Mirrored: 100}, wantHeld: 1, wantReason: true},
		{name: "not synced, service scope holds even if complete", deletes: 1, in: GuardInput{SourceComplete: true, Mirrored: 100}, wantHeld: 1, wantReason: true},
		{name: "not synced, complete full read allows", deletes: 1, in: GuardInput{SourceComplete: true, FullScope: true, Mirrored: 100}},
		{name: "not synced, force does not bypass the first-read rule", deletes: 1, in: GuardInput{Force: true, FullScope: true, Mirrored: 100}, wantHeld: 1, wantReason: true},
		{name: "under fraction", deletes: 6, in: GuardInput{Synced: true, Mirrored: 20}},
		{name: "over fraction but at guard min", deletes: 5, in: GuardInput{Synced: true, Mirrored: 6}},
		{name: "over fraction and min holds", deletes: 6, in: GuardInput{Synced: true, Mirrored: 10}, wantHeld: 6, wantReason: true},
		{name: "exactly the fraction passes", deletes: 10, in: GuardInput{Synced: true, Mirrored: 20}},
		{name: "forced applies", deletes: 6, in: GuardInput{Synced: true, Force: true, Mirrored: 10}, wantForced: 6},
		{name: "empty mirror with deletes holds", deletes: 6, in: GuardInput{Synced: true, Mirrored: 0}, wantHeld: 6, wantReason: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Safety = safety
			p := planWithDeletes(tt.deletes)
			v := Guard(p, tt.in)
			if v.Held != tt.wantHeld || v.Forced != tt.wantForced || (v.Reason != "") != tt.wantReason {
				t.Fatalf("Guard = held %d forced %d reason %q; want held %d forced %d reason %v", v.Held, v.Forced, v.Reason, tt.wantHeld, tt.wantForced, tt.wantReason)
			}
			if len(v.Plan.ServiceSets) != 1 {
				t.Fatalf("adds must always pass, got %d", len(v.Plan.ServiceSets))
			}
			wantDeletes := tt.deletes
			if tt.wantHeld > 0 {
				wantDeletes = 0
			}
			if got := len(v.Plan.ServiceDeletes); got != wantDeletes || v.Plan.DeleteInstances != wantDeletes || len(v.Plan.Removed) != wantDeletes {
				t.Fatalf("plan keeps %d deletes (%d instances, %d removed), want %d", got, v.Plan.DeleteInstances, len(v.Plan.Removed), wantDeletes)
			}
			for _, c := range v.Plan.Changes {
				if tt.wantHeld > 0 && c.Op == OpDelete {
					t.Fatalf("held plan still lists a delete change")
				}
			}
		})
	}
}

// Node deletes alone (owned nodes left empty) wait for the first complete
// read too.
func TestGuard_NodeDeletesBeforeFirstRead(t *testing.T) {
	p := Plan{NodeDeletes: []string{"n"}, Changes: []Change{{Op: OpDelete, Kind: KindNode, Node: "n"}}}
	v := Guard(p, GuardInput{FullScope: true, Mirrored: 3})
	if len(v.Plan.NodeDeletes) != 0 || v.Reason == "" {
		t.Errorf("node deletes passed before the first complete read: %+v", v)
	}
	if v = Guard(p, GuardInput{FullScope: true, SourceComplete: true, Mirrored: 3}); len(v.Plan.NodeDeletes) != 1 {
		t.Errorf("node deletes held after a complete read: %+v", v)
	}
}

func FuzzGuard(f *testing.F) {
	f.Add(3, 10, 0.5, 5, true, true, true, false)
	f.Add(100, 10, 0.1, 0, false, true, false, true)
	f.Fuzz(func(t *testing.T, deletes, mirrored int, fraction float64, guardMin int, synced, full, complete, force bool) {
		if deletes < 0 || deletes > 1000 || mirrored < 0 || !(fraction > 0 && fraction <= 1) || guardMin < 0 {
			return // outside the guard's domain (config validation rejects it)
		}
		in := GuardInput{Safety: config.Safety{MaxDeleteFraction: fraction, DeleteGuardMin: guardMin},
			Synced: synced, FullScope: full, SourceComplete: complete, Force: force, Mirrored: mirrored}
		v := Guard(planWithDeletes(deletes), in)
		applied := len(v.Plan.ServiceDeletes)
		if applied != 0 && applied != deletes {
			t.Fatalf("guard split deletes: %d of %d", applied, deletes)
		}
		if applied != v.Plan.DeleteInstances {
			t.Fatalf("plan applies %d deletes but counts %d", applied, v.Plan.DeleteInstances)
		}
		if applied > 0 && !synced && !(complete && full) {
			t.Fatalf("deletes applied before the first complete read")
		}
		if applied > guardMin && float64(applied) > fraction*float64(mirrored) && !force {
			t.Fatalf("unforced mass delete applied: %d of %d", applied, mirrored)
		}
		if v.Held+applied != deletes {
			t.Fatalf("held %d + applied %d != %d", v.Held, applied, deletes)
		}
		if (v.Forced > 0) && !force {
			t.Fatalf("forced %d without force", v.Forced)
		}
	})
}

// The mass-delete guard holds a cycle's deletes past max_delete_fraction
// (counted, reported, nothing removed); a forced resync applies them.
func TestSync_MassDeleteGuard(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Safety = config.Safety{MaxDeleteFraction: 0.5, DeleteGuardMin: 5} })
	for i := range 10 {
		e.pub.register("dc1", inst("web", fmt.Sprintf("n%d", i), fmt.Sprintf("web-%d", i), 80))
	}
	e.full()
	for i := 2; i < 10; i++ {
		e.pub.deregister("dc1", "web", fmt.Sprintf("web-%d", i))
	}
	res := e.full()
	if res.DeletesHeld != 8 || res.HeldReason != "would delete 8 of 10 mirrored instances (more than max_delete_fraction 0.50)" {
		t.Errorf("held %d, reason %q", res.DeletesHeld, res.HeldReason)
	}
	wantCounts(t, res, 0, 0, 0)
	if n := len(e.st.held("web")); n != 10 {
		t.Errorf("store holds %d instances, want 10", n)
	}
	if got := counter(e.m.DeletesHeldTotal.WithLabelValues(gw)); got != 8 {
		t.Errorf("deletes_held_total %v", got)
	}
	if got := counter(e.m.DeletesHeld.WithLabelValues(gw)); got != 8 {
		t.Errorf("deletes_held %v", got)
	}
	if st := e.ctl.Status().Gateways[0]; st.DeletesHeld != 8 || st.HeldReason == "" {
		t.Errorf("status %+v", st)
	}

	res, err := e.sync(Request{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 0, 0, 8)
	wantHeld(t, e.st, "web", mn("dc1", "n0")+"/web-0:80", mn("dc1", "n1")+"/web-1:80")
	if got := counter(e.m.ForcedDeletes.WithLabelValues(gw)); got != 8 {
		t.Errorf("forced_deletes_total %v", got)
	}
	if got := counter(e.m.DeletesHeld.WithLabelValues(gw)); got != 0 {
		t.Errorf("deletes_held %v after the forced resync", got)
	}
}

// A controller that has not completed a full read of every catalog and
// service since it started deletes nothing, even from a service whose own
// answer was read: a later cycle with complete evidence does. A failover
// DC down does not keep the mirror from being maintained (complete, ready:
// review finding H4), only from deleting.
func TestSync_NoDeletesBeforeFirstCompleteRead(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80))
	e.pub.register("dc2", inst("api", "m1", "api-1", 90))
	e.full()
	e.restart(nil) // a new process: the mirror is from its predecessor
	e.pub.deregister("dc1", "web", "web-2")
	e.pub.locked(func() { e.pub.down["dc2"] = true })
	res, err := e.sync(Request{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Complete || res.DeletesHeld != 1 || res.HeldReason != "no complete read of the source yet" {
		t.Errorf("complete %v held %d reason %q", res.Complete, res.DeletesHeld, res.HeldReason)
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80", mn("dc1", "n2")+"/web-2:80")
	if !e.ctl.Ready() {
		t.Error("not ready after a complete sync (with a failover DC down)")
	}
	if res, _ := e.sync(Request{}); res.DeletesHeld != 1 {
		t.Errorf("a second cycle without complete evidence deleted: held %d", res.DeletesHeld)
	}

	e.pub.locked(func() { e.pub.down["dc2"] = false })
	res = e.full()
	if !res.Complete || res.DeletesHeld != 0 {
		t.Errorf("complete %v held %d", res.Complete, res.DeletesHeld)
	}
	wantCounts(t, res, 0, 0, 1)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	wantHeld(t, e.st, "api", mn("dc2", "m1")+"/api-1:90")
}
