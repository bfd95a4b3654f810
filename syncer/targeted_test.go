package syncer

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/test/harness"
)

// gate blocks the fake public's executions of one service until released,
// telling the test when the first one is waiting.
type gate struct {
	service  string
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	disarmed bool
	mu       sync.Mutex
}

func newGate(p *fakePublic, service string) *gate {
	g := &gate{service: service, entered: make(chan struct{}), release: make(chan struct{})}
	p.locked(func() {
		p.beforeExecute = func(dc, s string) {
			g.mu.Lock()
			off := g.disarmed
			g.mu.Unlock()
			if s != g.service || off {
				return
			}
			g.once.Do(func() { close(g.entered) })
			<-g.release
		}
	})
	return g
}

// wait blocks until an execution of the gated service is waiting.
func (g *gate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("no execution of %s reached the gate", g.service)
	}
}

// open releases the waiting executions and lets later ones through.
func (g *gate) open() {
	g.mu.Lock()
	g.disarmed = true
	g.mu.Unlock()
	close(g.release)
}

// An event-driven reconcile that applied a newer answer is not undone by a
// full cycle that read its answer earlier (an answer is never applied over
// one that started later).
func TestSync_EventAnswerNotOverwrittenByOlderFullRead(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("slow", "n2", "slow-1", 70))
	e.full()

	g := newGate(e.pub, "slow")
	done := make(chan Result, 1)
	execs := e.pub.count("execute", "dc1", "web")
	go func() {
		res, err := e.ctl.Sync(e.ctx(), Request{Gateway: gw})
		if err != nil {
			t.Errorf("full reconcile: %v", err)
		}
		done <- res
	}()
	g.wait(t)                                            // the full cycle waits on slow...
	harness.Eventually(t, 10*time.Second, func() error { // ...and holds web's answer (port 80)
		if n := e.pub.count("execute", "dc1", "web"); n != execs+1 {
			return fmt.Errorf("the full cycle executed web %d times", n-execs)
		}
		return nil
	})
	e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 })
	res, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scope != ScopeEvent {
		t.Errorf("scope %q", res.Scope)
	}
	wantCounts(t, res, 0, 1, 0)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	g.open()
	full := <-done
	if !full.Complete {
		t.Errorf("full cycle incomplete: %+v", full)
	}
	wantCounts(t, full, 0, 0, 0)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:81")
	// The next full cycle reads the newer answer and leaves it alone.
	if res := e.full(); len(res.Changes) > 0 {
		t.Errorf("next cycle changes %q", changeStrings(res.Changes))
	}
}

// A forced resync of one service reads the cluster fresh and repairs an
// entry changed out of band; a dry run plans the same without writing.
func TestSync_ForcedServiceResync(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("api", "n1", "api-1", 90))
	e.full()
	e.st.mu.Lock()
	svc := e.st.services[mn("dc1", "n1")]["web-1"]
	svc.Port = 9999 // someone edited the mirror
	e.st.services[mn("dc1", "n1")]["web-1"] = svc
	e.st.mu.Unlock()

	commits, _, _, _ := e.st.stats()
	dry, err := e.sync(Request{Services: []string{"web"}, Force: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, dry, 0, 1, 0)
	if c, _, _, _ := e.st.stats(); c != commits {
		t.Error("a dry run committed")
	}
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:9999")

	res, err := e.sync(Request{Services: []string{"web"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scope != ScopeServices || !res.Complete {
		t.Errorf("scope %q complete %v", res.Scope, res.Complete)
	}
	wantCounts(t, res, 0, 1, 0)
	wantHeld(t, e.st, "web", mn("dc1", "n1")+"/web-1:80")
	wantHeld(t, e.st, "api", mn("dc1", "n1")+"/api-1:90")
}

// An event-driven reconcile of a service new to the mirror writes it and
// adds it to the coverage; one whose empty answer is confirmed deletes it.
func TestSync_EventReconcile(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	e.pub.register("dc1", inst("api", "n2", "api-1", 90))
	res, err := e.sync(Request{Services: []string{"api"}, minAt: e.clock.Now()})
	if err != nil || !res.Complete {
		t.Fatalf("%v %+v", err, res)
	}
	wantCounts(t, res, 1, 0, 0)
	wantHeld(t, e.st, "api", mn("dc1", "n2")+"/api-1:90")
	if got := e.st.covered(t); !slices.Equal(got, []string{"api", "web"}) {
		t.Errorf("coverage %q", got)
	}
	if f := e.st.feed(t); !slices.Equal(f.Recent[len(f.Recent)-1].Services, []string{"api"}) {
		t.Errorf("feed's last change %+v", f.Recent[len(f.Recent)-1])
	}

	e.pub.update("dc1", "web", critical)
	res, err = e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, res, 0, 0, 1)
	wantHeld(t, e.st, "web")
	// The model knows every service on the node: the node left empty goes
	// with its last instance.
	if _, ok := e.st.node(mn("dc1", "n1")); ok {
		t.Error("a targeted reconcile left an empty owned node")
	}
}

// With selection by tags, an event-driven reconcile cannot tell a
// service's tags in every DC: it leaves a service whose answer lacks them
// to the full reconcile.
func TestSync_EventReconcileWithTags(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Gateways[0].Services.Tags = []string{"public"} })
	web := inst("web", "n1", "web-1", 80)
	web.Tags = []string{"public"}
	e.pub.register("dc1", web, inst("api", "n2", "api-1", 90))
	e.full()
	wantHeld(t, e.st, "api")
	res, err := e.sync(Request{Services: []string{"api", "web"}, minAt: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	wantKept(t, res, map[string]string{"api": "left to the full reconcile"})
	wantHeld(t, e.st, "api")
	wantCounts(t, res, 0, 0, 0)
}

// Before the first full reconcile has loaded the mirror, events wait.
func TestSync_EventBeforeLoad(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); err != errNotLoaded {
		t.Fatalf("error %v, want errNotLoaded", err)
	}
	if c, _, _, _ := e.st.stats(); c != 0 {
		t.Error("committed before the mirror was loaded")
	}
}

// An event-driven reconcile that removes the last instance of a node
// removes the node too: the model knows every service on it (the node
// used to stay, empty, until the next full reconcile).
func TestEvent_EmptiedNodeDeleted(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Safety.MaxDeleteFraction = 1 })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("web", "n2", "web-2", 80), inst("api", "n2", "api-2", 90))
	e.full()
	e.pub.deregister("dc1", "web", "web-1")
	if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	_, n1 := e.st.node(mn("dc1", "n1"))
	_, n2 := e.st.node(mn("dc1", "n2"))
	if n1 {
		t.Error("the emptied node is still in the mirror")
	}
	if !n2 {
		t.Error("a node with another service left was deleted")
	}
	wantHeld(t, e.st, "web", mn("dc1", "n2")+"/web-2:80")
	wantHeld(t, e.st, "api", mn("dc1", "n2")+"/api-2:90")
}
