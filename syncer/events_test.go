package syncer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer/watch"
	"github.com/gwsync/gwsync/test/harness"
)

// fakeDetector is a change feed whose usable counts a test sets; its Run
// only waits (tests call HandleEvent themselves).
type fakeDetector struct {
	mu     sync.Mutex
	usable map[string]int // "dc|service"
}

func (d *fakeDetector) Run(ctx context.Context, sink func(watch.Event)) error {
	<-ctx.Done()
	return nil
}

func (d *fakeDetector) DCs() []string { return []string{"dc1", "dc2"} }

func (d *fakeDetector) Usable(dc, service string) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.usable[dc+"|"+service]
	return n, ok
}

func (d *fakeDetector) set(dc, service string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.usable[dc+"|"+service] = n
}

// A change matters to a gateway when it is in its source DC, or in a DC
// its query can fail over to while the last answer failed over or the
// source DC has no usable instance (or that is not known).
func TestController_Affects(t *testing.T) {
	tests := []struct {
		name string
		// nearest: the query fails over by nearest_n (any DC).
		nearest bool
		// answeredBy: the DC whose instances answered the last
		// execution ("" none: never executed, or empty).
		answeredBy string
		// usable: the detector's count in the source DC (-1: unknown).
		usable  int
		dc      string
		service string
		want    bool
	}{
		{name: "change in the source DC", dc: "dc1", service: "web", answeredBy: "dc1", usable: 2, want: true},
		{name: "failover DC, answered by the source DC with usable instances", dc: "dc2", service: "web", answeredBy: "dc1", usable: 2},
		{name: "failover DC, the last answer failed over", dc: "dc2", service: "web", answeredBy: "dc2", usable: 0, want: true},
		{name: "failover DC, the source DC has no usable instance any more", dc: "dc2", service: "web", answeredBy: "dc1", usable: 0, want: true},
		{name: "failover DC, the source DC's count is unknown", dc: "dc2", service: "web", answeredBy: "dc1", usable: -1, want: true},
		{name: "failover DC, never answered", dc: "dc2", service: "web", usable: -1, want: true},
		{name: "a DC outside the failover list", dc: "dc3", service: "web", answeredBy: "dc2", usable: 0},
		{name: "any DC with nearest_n", nearest: true, dc: "dc3", service: "web", answeredBy: "dc3", usable: 0, want: true},
		{name: "nearest_n, answered by the source DC with usable instances", nearest: true, dc: "dc3", service: "web", answeredBy: "dc1", usable: 1},
		{name: "a service the gateway does not select", dc: "dc1", service: "consul", usable: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			det := &fakeDetector{usable: map[string]int{}}
			e := newEnv(t, func(c *config.Config) {
				if tt.nearest {
					c.Query.NearestN = 2
				}
			})
			e.restart(det)
			e.pub.locked(func() { e.pub.dcs = append(e.pub.dcs, "dc3") })
			switch tt.answeredBy {
			case "dc1":
				e.pub.register("dc1", inst(tt.service, "n1", "x-1", 80))
			case "":
			default:
				e.pub.locked(func() { e.pub.targets["dc1"] = []string{tt.answeredBy} })
				e.pub.register(tt.answeredBy, inst(tt.service, "m1", "x-1", 80))
			}
			if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", tt.service, time.Time{}); err != nil {
				e.pub.locked(func() { e.pub.templates["dc1"] = true })
				if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", tt.service, e.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if got, ok := e.ctl.shared.AnsweredBy("dc1", tt.service); got != tt.answeredBy || ok != (tt.answeredBy != "") {
				t.Fatalf("setup: answered by %q %v, want %q", got, ok, tt.answeredBy)
			}
			if tt.usable >= 0 {
				det.set("dc1", tt.service, tt.usable)
			}
			if got := e.ctl.affects(e.gw, tt.dc, tt.service); got != tt.want {
				t.Errorf("affects(%s, %s) = %v, want %v", tt.dc, tt.service, got, tt.want)
			}
		})
	}
}

// A burst of events for one service costs a few executions, not one per
// event: while the gateway's event worker reconciles, new changes wait and
// are taken together.
func TestController_EventsCoalesced(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t)
	e.restart(det)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	execs := e.pub.count("execute", "dc1", "web")

	stop := e.runEvents()

	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	g := newGate(e.pub, "web")
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: e.clock.Now()})
	g.wait(t) // the first round is executing web
	for range 99 {
		e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: e.clock.Now()})
	}
	g.open()
	harness.Eventually(t, 10*time.Second, func() error {
		if n := counter(e.m.EventServices.WithLabelValues(gw)); n != 2 {
			return fmt.Errorf("%v services reconciled by events, want 2", n)
		}
		if n := e.pub.count("execute", "dc1", "web"); n != execs+2 {
			return fmt.Errorf("%d executions", n-execs)
		}
		if len(e.ctl.events.take(gw)) > 0 {
			return fmt.Errorf("events still pending")
		}
		return nil
	})
	stop()
	if n := e.pub.count("execute", "dc1", "web"); n != execs+2 {
		t.Errorf("100 events cost %d executions, want 2", n-execs)
	}
	if got := counter(e.m.EventsCoalesced.WithLabelValues(gw)); got != 98 {
		t.Errorf("coalesced %v, want 98", got)
	}
	if got := counter(e.m.EventsReceived.WithLabelValues("dc1")); got != 100 {
		t.Errorf("received %v, want 100", got)
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
}

// A resync event asks every gateway that depends on its DC for a full
// reconcile; others ignore it.
func TestController_ResyncEvent(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t)
	e.restart(det)
	e.ctl.HandleEvent(watch.Event{DC: "dc3", Resync: true})
	if len(e.gw.kick) != 0 {
		t.Error("a resync of a DC the gateway does not use asked for a full reconcile")
	}
	e.ctl.HandleEvent(watch.Event{DC: "dc2", Resync: true, At: e.clock.Now()})
	if len(e.gw.kick) != 1 {
		t.Error("a resync of a failover DC did not ask for a full reconcile")
	}
	<-e.gw.kick
	// A full reconcile that started after the resync's changes covers them.
	at := e.clock.Now()
	e.full()
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: at})
	if len(e.gw.kick) != 0 {
		t.Error("a resync already covered by a full reconcile asked for another")
	}
}

// A change seen before a gateway's mirror is loaded (a new owner, a
// fresh start) is reconciled once a full reconcile has loaded it, with an
// answer newer than the change, even when that full reconcile reused an
// older shared answer: before, the event round failed ("mirror not
// loaded"), the full reconcile was trusted to cover it, and it served the
// answer another gateway had read before the change, so the change waited
// for the next scheduled full reconcile (5 minutes by default).
func TestController_EventBeforeModelLoaded(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.restart(det)
	// Another gateway on dc1 read web just before the change.
	e.pub.locked(func() { e.pub.templates["dc1"] = true })
	if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", "web", time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: e.clock.Now()})

	e.runEvents()
	// The event worker asks for the full reconcile that loads the mirror;
	// the gateway's loop (this test) runs it.
	harness.Eventually(t, 10*time.Second, func() error {
		if len(e.gw.kick) == 0 {
			return fmt.Errorf("no full reconcile asked for")
		}
		return nil
	})
	<-e.gw.kick
	e.full()
	waitHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	if len(e.gw.kick) != 0 {
		t.Error("another full reconcile was asked for: the event round should have covered the change")
	}
}

// A full reconcile covers changes made before the oldest answer it may
// use: one share window before its start.
func TestController_ResyncWithinShareWindow(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.restart(det)
	at := e.clock.Now()
	e.full() // started after at, but may reuse answers up to a minute older
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: at})
	if len(e.gw.kick) != 1 {
		t.Fatal("a resync within the share window of a full reconcile's start did not ask for another")
	}
	<-e.gw.kick
	e.clock.Advance(2 * time.Minute)
	e.full()
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: at})
	if len(e.gw.kick) != 0 {
		t.Error("a resync older than a full reconcile's share window asked for another")
	}
}

// An event round whose source read failed (a DC timing out or backing
// off) retries those services after a backoff, until the change is
// applied: before, the change waited for the next full reconcile, whose
// own retries back off to minutes.
func TestController_EventReadFailureRetried(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Retry.MinBackoff, c.Retry.MaxBackoff = time.Millisecond, 20*time.Millisecond })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.restart(det)
	e.full()
	e.runEvents()

	e.pub.failOp("execute", "dc1", errors.New("Unexpected response code: 500 (rpc error: timeout)"), "web")
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: e.clock.Now()})
	harness.Eventually(t, 10*time.Second, func() error {
		if n := e.pub.count("execute", "dc1", "web"); n < 3 {
			return fmt.Errorf("%d executions of web: the failed read is not retried", n)
		}
		return nil
	})
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	e.pub.failOp("execute", "dc1", nil, "web")
	waitHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	if len(e.gw.kick) != 0 {
		t.Error("a full reconcile was asked for")
	}
}

// The change feed's full list from a DC (a Resync) proves it answers: its
// read backoff ends, so the full reconcile the resync triggers reads it
// instead of failing fast.
func TestController_ResyncEndsDCBackoff(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Retry.MinBackoff, c.Retry.MaxBackoff = time.Minute, time.Hour })
	e.restart(det)
	e.pub.locked(func() { e.pub.down["dc1"] = true })
	if _, err := e.ctl.shared.Catalog(e.ctx(), "dc1", time.Time{}); err == nil {
		t.Fatal("dc1 is down")
	}
	e.pub.locked(func() { e.pub.down["dc1"] = false })
	if _, err := e.ctl.shared.Catalog(e.ctx(), "dc1", time.Time{}); !errors.Is(err, ErrBackoff) {
		t.Fatalf("dc1 not backed off: %v", err)
	}
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: e.clock.Now()})
	if _, err := e.ctl.shared.Catalog(e.ctx(), "dc1", time.Time{}); err != nil {
		t.Fatalf("dc1 still backed off after the feed's full list: %v", err)
	}
}

// A new owner's first full reconcile reads only answers newer than its
// lease: the change events before it were not its own (it ignored them,
// and the old owner dropped those it had queued), so an answer this
// process read earlier for another gateway would hide them until the next
// scheduled full reconcile.
func TestController_NewOwnerReadsFresh(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.pub.locked(func() { e.pub.templates["dc1"] = true })
	// Another gateway on dc1 (this replica's) read web; then web changed
	// while this gateway belonged to another replica.
	if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", "web", time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.gw.setOwned(true) // this replica takes the gateway's lease
	e.full()
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
}

// A retried event read asks for an answer newer than the failed one: with
// a share window the retries were served the cached error, and never
// reached the public cluster while it lasted.
func TestController_EventRetryReadsAgain(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) {
		c.Query.ShareWindow = time.Minute
		c.Retry.MinBackoff, c.Retry.MaxBackoff = time.Millisecond, 5*time.Millisecond
	})
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.restart(det)
	e.full()
	e.runEvents()
	before := e.pub.count("execute", "dc1", "web")
	e.pub.failOp("execute", "dc1", errors.New("Unexpected response code: 500 (rpc error: timeout)"), "web")
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: e.clock.Now()})
	harness.Eventually(t, 10*time.Second, func() error {
		if n := e.pub.count("execute", "dc1", "web") - before; n < 3 {
			return fmt.Errorf("%d execution(s) of web after %v event rounds: the retries reused the cached failure", n, counter(e.m.EventServices.WithLabelValues(gw)))
		}
		return nil
	})
}

// A coalesced event's round asks for an answer newer than its latest
// change, not its earliest: an answer that started in between may predate
// the later change (TestEvents_RandomChurn lost a deregistration merged
// into an earlier event this way).
func TestController_CoalescedEventReadsAfterLatestChange(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.restart(det)
	e.full()
	first := e.clock.Now() // a first change seen
	// An answer read after it (another gateway's round), before a second
	// change the detector merged into the same event.
	if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", "web", first); err != nil {
		t.Fatal(err)
	}
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	latest := e.clock.Now()
	e.runEvents()
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}, At: first, Latest: latest})
	waitHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
}

// The full reconcile a resync asks for reads answers newer than the
// resync's latest change: before, it could reuse an answer another
// gateway had read within the share window before the change, and the
// services the resync carried waited for the next scheduled full
// reconcile (found by the review).
func TestController_ResyncFullReadsAfterLatestChange(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.restart(det)
	e.full()
	// Another gateway on dc1 reads web just before the change.
	if _, err := e.ctl.shared.Execute(e.ctx(), "dc1", "web", time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	now := e.clock.Now()
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, Services: []string{"web"}, At: now, Latest: now})
	if len(e.gw.kick) != 1 {
		t.Fatal("a resync did not ask for a full reconcile")
	}
	<-e.gw.kick
	e.full()
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: now, Latest: now})
	if len(e.gw.kick) != 0 {
		t.Error("the full reconcile the resync asked for does not cover it")
	}
}

// A resync whose earliest change a full reconcile covers, but not its
// latest, asks for another.
func TestController_ResyncCoveredUpToItsLatestChange(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.restart(det)
	at := e.clock.Now()
	e.clock.Advance(2 * time.Minute)
	latest := e.clock.Now()
	e.full() // may use answers from latest-1m on: after at, not after latest
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Resync: true, At: at, Latest: latest})
	if len(e.gw.kick) != 1 {
		t.Error("a resync whose latest change the full reconcile does not cover asked for none")
	}
}

// An event without times (a detector that sets none) is taken as seen
// now: its round does not accept older answers and its latency is not
// measured from the zero time.
func TestController_EventWithoutTimes(t *testing.T) {
	det := &fakeDetector{usable: map[string]int{}}
	e := newEnv(t, func(c *config.Config) { c.Query.ShareWindow = time.Minute })
	e.restart(det)
	e.ctl.HandleEvent(watch.Event{DC: "dc1", Services: []string{"web"}})
	e.ctl.events.mu.Lock()
	ch := e.ctl.events.pending[e.gw.cfg.Name]["web"]
	e.ctl.events.mu.Unlock()
	if ch.at.IsZero() || ch.minAt.IsZero() {
		t.Errorf("change without times queued as %+v", ch)
	}
}
