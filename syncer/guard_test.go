package syncer

import (
	"testing"

	"github.com/gwsync/gwsync/config"
)

func planWithDeletes(n int) Plan {
	p := Plan{ServiceSets: []Service{{Node: "n", ID: "new"}}, Changes: []Change{{Op: "add", Kind: "service"}}}
	for i := 0; i < n; i++ {
		p.ServiceDeletes = append(p.ServiceDeletes, ServiceDelete{Key: Key{Node: "n", ID: string(rune('a' + i%26))}, Name: "web"})
		p.Changes = append(p.Changes, Change{Op: "delete", Kind: "service"})
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
			if got := len(v.Plan.ServiceDeletes); got != wantDeletes {
				t.Fatalf("plan keeps %d deletes, want %d", got, wantDeletes)
			}
			for _, c := range v.Plan.Changes {
				if tt.wantHeld > 0 && c.Op == "delete" {
					t.Fatalf("held plan still lists a delete change")
				}
			}
		})
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
		if applied > 0 && !synced && !(complete && full) {
			t.Fatalf("deletes applied before the first complete read")
		}
		if applied > guardMin && float64(applied) > fraction*float64(mirrored) && !force {
			t.Fatalf("unforced mass delete applied: %d of %d", applied, mirrored)
		}
		if v.Held+applied != deletes {
			t.Fatalf("held %d + applied %d != %d", v.Held, applied, deletes)
		}
	})
}
