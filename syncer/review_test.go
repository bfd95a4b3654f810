package syncer

// Regression tests for findings of the independent review of the core
// (each failed on the code it reviewed).

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/test/harness"
)

// heldPublic wraps fakePublic: the first execution of one service computes
// its answer at once (the server answered) but is delivered only once
// released (a slow response, or one waiting for a DC slot).
type heldPublic struct {
	*fakePublic
	service string
	entered chan struct{}
	release chan struct{}
	armed   bool
}

func (h *heldPublic) Execute(ctx context.Context, dc, service string) (Answer, error) {
	a, err := h.fakePublic.Execute(ctx, dc, service)
	if service == h.service && h.armed {
		h.armed = false
		close(h.entered)
		<-h.release
	}
	return a, err
}

// An event-driven reconcile (minAt = the change) never joins a shared
// execution that started before the change: it would apply the older
// answer and the change would wait for the next full reconcile (review M1).
func TestShared_EventDoesNotJoinAnOlderExecution(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	h := &heldPublic{fakePublic: e.pub, service: "web", entered: make(chan struct{}), release: make(chan struct{})}
	ctl, err := New(e.cfg, Options{Registerer: prometheus.NewRegistry(), Now: e.clock.Now, Public: h, Stores: map[string]Store{gw: e.st}, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	e.ctl, e.gw = ctl, ctl.gateways[gw]
	e.full() // the new controller loads its model
	h.armed = true
	done := make(chan struct{})
	go func() { // the safety net executes web (its answer: port 80) ...
		defer close(done)
		if _, err := e.ctl.Sync(e.ctx(), Request{Gateway: gw}); err != nil {
			t.Errorf("full: %v", err)
		}
	}()
	<-h.entered
	// ... the instance changes (port 81) and the change feed says so.
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.clock.Advance(time.Second)
	evDone := make(chan error, 1)
	go func() {
		_, err := e.ctl.Sync(e.ctx(), Request{Gateway: gw, Services: []string{"web"}, minAt: e.clock.Now()})
		evDone <- err
	}()
	select {
	case err := <-evDone:
		if err != nil {
			t.Fatalf("event: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event-driven reconcile waits for the older execution in flight")
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	close(h.release)
	<-done
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81") // the older answer is not applied over it
}

// A full reconcile that confirmed a service gone from every catalog does
// not delete the instances an event-driven reconcile added meanwhile from
// a newer answer (a redeploy during the cycle; review M2).
func TestSync_AbsentServiceReaddedDuringCycle(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("old", "n1", "old-1", 80), inst("slow", "n2", "slow-1", 70))
	e.full()
	e.pub.deregister("dc1", "old")
	g := newGate(e.pub, "slow")
	done := make(chan Result, 1)
	go func() {
		res, err := e.ctl.Sync(e.ctx(), Request{Gateway: gw})
		if err != nil {
			t.Errorf("full: %v", err)
		}
		done <- res
	}()
	g.wait(t)
	harness.Eventually(t, 10*time.Second, func() error {
		if e.pub.count("usable", "dc2", "old") == 0 {
			return fmt.Errorf("old not confirmed gone yet")
		}
		return nil
	})
	e.clock.Advance(time.Second)
	e.pub.register("dc1", inst("old", "n1", "old-1", 80))
	if _, err := e.sync(Request{Services: []string{"old"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, e.st, "old", mn("dc1", "n1")+"/old-1:80")
	g.open()
	if full := <-done; full.Deletes != 0 {
		t.Errorf("the full cycle deleted %d instances: %q", full.Deletes, changeStrings(full.Changes))
	}
	wantHeld(t, e.st, "old", mn("dc1", "n1")+"/old-1:80")
}

// A service an event-driven reconcile added during a full cycle stays
// covered by that cycle's last txn (review M3).
func TestSync_CoverageKeepsEventAddedService(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("slow", "n2", "slow-1", 70))
	e.full()
	g := newGate(e.pub, "slow")
	done := make(chan Result, 1)
	go func() {
		res, err := e.ctl.Sync(e.ctx(), Request{Gateway: gw})
		if err != nil {
			t.Errorf("full: %v", err)
		}
		done <- res
	}()
	g.wait(t)
	e.pub.register("dc1", inst("fresh", "n3", "fresh-1", 90))
	if _, err := e.sync(Request{Services: []string{"fresh"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	g.open()
	<-done
	if cov := e.st.covered(t); !slices.Contains(cov, "fresh") {
		t.Errorf("fresh is mirrored but not covered after the full cycle: %v", cov)
	}
}

// A public DC the gateway's query never uses (neither its source nor its
// failover list) being down does not unvouch a mirror that is kept up to
// date (review H4).
func TestSync_UnusedDCDownKeepsVouching(t *testing.T) {
	e := newEnv(t)
	e.pub.locked(func() { e.pub.dcs = append(e.pub.dcs, "dc3"); e.pub.down["dc3"] = true })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	res, _ := e.sync(Request{})
	if !res.Complete || len(res.Errors) == 0 {
		t.Errorf("first cycle with dc3 down: complete %v errors %q; want complete, with dc3's error reported", res.Complete, res.Errors)
	}
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.clock.Advance(2 * time.Hour)
	if res, _ = e.sync(Request{}); !res.Complete || res.Updates != 1 {
		t.Errorf("cycle 2h later: complete %v updates %d", res.Complete, res.Updates)
	}
	e.gw.heartbeat(e.ctx())
	if st := e.gw.snapshot(); !st.Vouching || e.st.marker(t) == nil {
		t.Errorf("a maintained mirror is not vouched for because a DC the gateway never reads is down")
	}
}

// A non-empty answer from a server too stale to trust (no known leader,
// last contact past max_staleness) updates and adds but deletes nothing
// (review M5).
func TestSync_StaleAnswerDeletesNothing(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80))
	e.full()
	e.pub.locked(func() { e.pub.stale["dc1"] = true })
	e.pub.deregister("dc1", "web", "web-2")
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	res, _ := e.sync(Request{})
	if res.Deletes != 0 {
		t.Errorf("a stale answer deleted %d instances: %q", res.Deletes, changeStrings(res.Changes))
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81", mn("dc1", "n2")+"/web-2:80")
}
