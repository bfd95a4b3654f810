package syncer

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gwsync/gwsync/mirror"
)

// The heartbeat refreshes a marker that is there (and only then; a
// vanished marker asks for a full reconcile instead), and stops once the
// last complete sync is older than max_sync_age.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	first := e.st.marker(t)

	e.clock.Advance(time.Minute)
	e.gw.heartbeat(e.ctx())
	m := e.st.marker(t)
	if !m.CheckedAt.After(first.CheckedAt.Add(59*time.Second)) || !m.SyncedAt.Equal(first.SyncedAt) || m.Generation != first.Generation {
		t.Errorf("after a heartbeat: %+v (was %+v)", m, first)
	}
	if got := counter(e.m.Heartbeats.WithLabelValues(gw)); got != 1 {
		t.Errorf("heartbeats metric %v", got)
	}

	e.st.deleteMarker()
	e.gw.heartbeat(e.ctx())
	if m := e.st.marker(t); m != nil {
		t.Errorf("a heartbeat brought back a vanished marker: %+v", m)
	}
	if len(e.gw.kick) != 1 {
		t.Error("a vanished marker did not ask for a full reconcile")
	}
	<-e.gw.kick
	if got := counter(e.m.Heartbeats.WithLabelValues(gw)); got != 1 {
		t.Errorf("heartbeats metric %v after a failed refresh", got)
	}
	e.full() // rewrites the marker
	if e.st.marker(t) == nil {
		t.Fatal("a complete cycle did not rewrite a vanished marker")
	}

	_, _, beats, _ := e.st.stats()
	e.clock.Advance(mirror.DefaultMaxSyncAge + time.Second)
	e.gw.heartbeat(e.ctx())
	if _, _, b, _ := e.st.stats(); b != beats {
		t.Error("the heartbeat still vouches past max_sync_age")
	}
	if e.ctl.Status().Gateways[0].Vouching {
		t.Error("status still vouching")
	}
	e.full() // a complete sync vouches again
	e.gw.heartbeat(e.ctx())
	if _, _, b, _ := e.st.stats(); b != beats+1 || !e.ctl.Status().Gateways[0].Vouching {
		t.Error("not vouching after a new complete sync")
	}
}

// A heartbeat before any complete sync does nothing.
func TestHeartbeat_NotBeforeFirstSync(t *testing.T) {
	e := newEnv(t)
	e.gw.heartbeat(e.ctx())
	if _, _, b, _ := e.st.stats(); b != 0 {
		t.Errorf("%d heartbeats before the first complete sync", b)
	}
}

// A dedicated cluster that restarts empty under a running cycle makes the
// cycle's next write fail (the change feed is not what it loaded): no
// marker is written over a mirror the cycle did not fully write. The next
// cycle reloads and rewrites everything.
func TestSync_StoreRestartedMidCycle(t *testing.T) {
	for _, tt := range []struct {
		name string
		// before is the commit (counted from the cycle's first) the
		// cluster restarts before.
		before int
	}{
		{name: "before the cycle's first write", before: 1},
		{name: "before the write carrying the marker", before: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.pub.register("dc1", inst("web", "n1", "web-1", 80))
			e.full()
			e.pub.register("dc1", inst("api", "n2", "api-1", 90)) // the cycle writes adds, then coverage and marker
			base, _, _, _ := e.st.stats()
			e.st.beforeCommit = func(n int) {
				if n == base+tt.before {
					e.st.restartEmpty()
				}
			}
			res, err := e.sync(Request{})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("error %v, want ErrConflict", err)
			}
			if res.Complete {
				t.Error("complete")
			}
			if m := e.st.marker(t); m != nil {
				t.Errorf("marker written over a restarted cluster: %+v", m)
			}
			if got := e.st.covered(t); got != nil {
				t.Errorf("coverage written over a restarted cluster: %q", got)
			}
			if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); !errors.Is(err, errNotLoaded) {
				t.Errorf("an event reconcile after the conflict: %v, want errNotLoaded", err)
			}
			res = e.full()
			wantCounts(t, res, 2, 0, 0)
			wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
			wantHeld(t, e.st, "api", mn("dc1", "n2")+"/api-1:90")
			if m := e.st.marker(t); m == nil || m.Instances != 2 {
				t.Errorf("marker after the rewrite: %+v", m)
			}
		})
	}
}

// A write rejected by the HA fence stops the gateway's writing: the error
// is ErrFenced, the HA layer is told, the model is dropped (no event
// reconcile writes until a full one reloads), and nothing lands.
func TestSync_Fenced(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	fenced := 0
	e.gw.onFenced = func(session string) {
		if session != "mine" {
			t.Errorf("fence reported for session %q, want the one the write carried (mine)", session)
		}
		fenced++
	}
	e.st.holdLock("other-replica")
	e.st.SetFence(Fence{Key: mirror.LockKey(mirror.DefaultKVPrefix, gw), Session: "mine"})
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })

	_, err := e.sync(Request{})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("error %v, want ErrFenced", err)
	}
	if fenced != 1 || counter(e.m.Fenced.WithLabelValues(gw)) != 1 {
		t.Errorf("fence reported %d times, metric %v", fenced, counter(e.m.Fenced.WithLabelValues(gw)))
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); !errors.Is(err, errNotLoaded) {
		t.Errorf("an event reconcile after the fence: %v, want errNotLoaded", err)
	}
	e.gw.heartbeat(e.ctx())
	if m := e.st.marker(t); m.CheckedAt.After(m.SyncedAt) {
		t.Error("a fenced heartbeat refreshed the marker")
	}

	e.st.holdLock("mine")
	e.full()
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
}

// The coverage holds exactly the services whose answer, with instances,
// is in the mirror, and kept ones that were covered before (their entries
// are the last good answer); never a service with no instance (confirmed
// empty or not: a reader asks the public cluster), nor a service none of
// whose instances could be mirrored.
func TestSync_Coverage(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("gone", "n1", "gone-1", 80), inst("kept", "n2", "kept-1", 80),
		inst("consul", "n1", "consul", 8300))
	e.full()
	if got := e.st.covered(t); !slices.Equal(got, []string{"gone", "kept", "web"}) {
		t.Fatalf("coverage %q", got)
	}
	covSeq := e.st.feed(t).CoverageSeq

	e.pub.update("dc1", "gone", critical) // confirmed empty
	// kept: empty in dc1, usable in dc2, which the query cannot reach:
	// not confirmed, its mirrored entries stay.
	e.pub.update("dc1", "kept", critical)
	e.pub.register("dc2", inst("kept", "m2", "kept-2", 80))
	e.pub.locked(func() { e.pub.noFailover["dc2"] = true })
	// fresh: new, and the same as kept: nothing mirrored to keep.
	fresh := inst("fresh", "n3", "fresh-1", 80)
	fresh.Status = "critical"
	e.pub.register("dc1", fresh)
	e.pub.register("dc2", inst("fresh", "m3", "fresh-2", 80))
	// ghost: new, critical everywhere (confirmed, but nothing to delete:
	// not read as "no instances" on the mirror's word).
	ghost := inst("ghost", "n4", "ghost-1", 80)
	ghost.Status = "critical"
	e.pub.register("dc1", ghost)
	// bad: new, and its only instance cannot be mirrored.
	bad := inst("bad", "n5", "bad-1", 80)
	bad.NodeMeta = map[string]string{mirror.MetaManaged: mirror.ManagedValue}
	e.pub.register("dc1", bad)

	res := e.full()
	if !res.Complete {
		t.Fatalf("incomplete: %+v", res)
	}
	wantKept(t, res, map[string]string{"kept": "not confirmed: dc2 has usable instances"})
	wantHeld(t, e.st, "kept", mn("dc1", "n2")+"/kept-1:80")
	wantHeld(t, e.st, "gone")
	if got := e.st.covered(t); !slices.Equal(got, []string{"kept", "web"}) {
		t.Errorf("coverage %q, want [kept web]", got)
	}
	if st := e.ctl.Status().Gateways[0]; st.Covered != 2 {
		t.Errorf("status covered %d", st.Covered)
	}
	if got := e.st.feed(t).CoverageSeq; got == covSeq {
		t.Errorf("coverage seq %d unchanged: gone left the coverage", got)
	}
	covSeq = e.st.feed(t).CoverageSeq
	if e.full(); e.st.feed(t).CoverageSeq != covSeq {
		t.Errorf("the coverage changed again in the next cycle (flip-flop after a delete)")
	}

	// fresh becomes reachable: written and covered.
	e.pub.locked(func() { e.pub.noFailover["dc2"] = false })
	e.full()
	if got := e.st.covered(t); !slices.Equal(got, []string{"fresh", "kept", "web"}) {
		t.Errorf("coverage %q, want [fresh kept web]", got)
	}
	if f := e.st.feed(t); f.CoverageSeq != f.Seq {
		t.Errorf("coverage changed, the feed's coverage seq %d is not its seq %d", f.CoverageSeq, f.Seq)
	}
}

// The marker's counts say what the mirror holds: a cycle whose writes all
// went in earlier chunks, a cycle after event-driven writes, and one that
// deletes a whole service each rewrite it once; the next cycle writes
// nothing (but after a whole service's delete: see TestSync_Coverage).
func TestSync_MarkerCounts(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("api", "n2", "api-1", 90))
	e.full()
	check := func(step string, gen uint64, services, instances int, steady bool) {
		t.Helper()
		m := e.st.marker(t)
		if m.Generation != gen || m.Services != services || m.Instances != instances {
			t.Errorf("%s: marker generation %d, %d services, %d instances; want %d, %d, %d", step, m.Generation, m.Services, m.Instances, gen, services, instances)
		}
		if !steady {
			return
		}
		if res := e.full(); len(res.Changes) > 0 || e.st.marker(t).Generation != gen {
			t.Errorf("%s: the next cycle wrote %q, marker generation %d", step, changeStrings(res.Changes), e.st.marker(t).Generation)
		}
	}
	check("first cycle", 1, 2, 2, true)

	e.pub.register("dc1", inst("web", "n3", "web-3", 80)) // an add only: no write in the final txn
	e.full()
	check("an add", 2, 2, 3, true)

	e.pub.register("dc1", inst("web", "n4", "web-4", 80))
	if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.full()
	check("after an event-driven add", 3, 2, 4, true)

	e.pub.update("dc1", "api", critical)
	e.full()
	// The next cycle uncovers api (nothing mirrored, its empty answer no
	// longer confirmed) and so rewrites the marker once more.
	check("a confirmed delete of a whole service", 4, 1, 3, false)
}

// A controller that starts on (or takes over) a mirror that needs no
// write reports the marker's generation, not 0.
func TestSync_GenerationOfUnchangedMirror(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	gen := e.ctl.Status().Gateways[0].Generation
	if gen == 0 {
		t.Fatal("no generation after the first sync")
	}
	e.restart(nil)
	if res := e.full(); res.TxnOps != 0 {
		t.Fatalf("the unchanged mirror was written: %d ops", res.TxnOps)
	}
	if got := e.ctl.Status().Gateways[0].Generation; got != gen {
		t.Errorf("generation after a restart on an unchanged mirror = %d, want %d", got, gen)
	}
}
