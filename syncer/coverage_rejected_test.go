package syncer

import (
	"slices"
	"testing"

	"github.com/gwsync/gwsync/config"
)

// A service none of whose instances the dedicated cluster took (a token
// without node write on a fresh mirror, a refused node) is not covered:
// the mirror would otherwise vouch for it, and a resolver would answer
// "no instances" from the mirror for a service that has some. It is
// covered once its instances land.
func TestSync_RejectedServiceNotCovered(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("api", "n2", "api-2", 90))
	refuseNode(e.st, mn("dc1", "n2"))
	if res := e.full(); !res.Complete || len(res.Problems) != 2 {
		t.Fatalf("result %+v; want complete, the node and its service reported", res)
	}
	wantHeld(t, e.st, "api")
	if got := e.st.covered(t); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("coverage %q, want only web: api has no entry in the mirror", got)
	}

	refuseNode(e.st, "")
	e.full()
	if got := e.st.covered(t); !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("coverage %q once api's instance landed, want api and web", got)
	}
}

// The event path too: a new service whose instances were all refused is
// not covered by the event-driven reconcile that tried to write it (the
// coverage went into the same txn as the refused ops: a resolver then
// answered "no instances" from the mirror).
func TestEvent_RejectedServiceNotCovered(t *testing.T) {
	e := newEnv(t)
	e.pub.register("dc1", inst("web", "n1", "web-1", 80))
	e.full()
	e.pub.register("dc1", inst("api", "n2", "api-2", 90))
	refuseNode(e.st, mn("dc1", "n2"))
	if _, err := e.sync(Request{Services: []string{"api"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, e.st, "api")
	if got := e.st.covered(t); !slices.Equal(got, []string{"web"}) {
		t.Fatalf("coverage %q after the refused event write, want only web", got)
	}
	refuseNode(e.st, "")
	if _, err := e.sync(Request{Services: []string{"api"}, minAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := e.st.covered(t); !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("coverage %q once api's instance landed, want api and web", got)
	}
}

// refuseNode makes the store refuse every op on node as a token without
// node write would ("": refuse nothing).
func refuseNode(st *fakeStore, node string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.reject = nil
	if node == "" {
		return
	}
	st.reject = func(o fakeOp) string {
		if o.Node == node {
			return "Permission denied: token with AccessorID 'x' lacks permission 'node:write' on \"" + o.Node + "\""
		}
		return ""
	}
}

// A node whose only instance the cluster refused (service write denied)
// is kept by event rounds of other services: only a full reconcile knows
// the node is needed. Event rounds used to delete it and full reconciles
// to recreate it, every cycle (the catalog index moved, so the cheap
// steady cycle became a full reread).
func TestEvent_KeepsNodeOfRefusedInstance(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Safety.MaxDeleteFraction = 1 })
	e.pub.register("dc1", inst("web", "n1", "web-1", 80), inst("secret", "n2", "secret-2", 90))
	e.st.mu.Lock()
	e.st.reject = func(o fakeOp) string {
		if o.Service == "secret" && o.Verb == "service_set" {
			return "Permission denied: token lacks permission 'service:write' on \"secret\""
		}
		return ""
	}
	e.st.mu.Unlock()
	e.full()
	n2 := mn("dc1", "n2")
	if _, ok := e.st.node(n2); !ok {
		t.Fatal("setup: the full reconcile did not create n2")
	}
	for round := range 3 {
		e.pub.update("dc1", "web", func(i *fakeInst) { i.Port = 81 + round })
		if _, err := e.sync(Request{Services: []string{"web"}, minAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		e.full()
	}
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	for _, o := range e.st.ops {
		if o.Node == n2 && o.Verb == "node_delete" {
			t.Fatalf("node %s, needed by secret whose instance was refused, was deleted by an event round of web", n2)
		}
	}
}
