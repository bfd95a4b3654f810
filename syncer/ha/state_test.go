package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/mirror"
)

// newIdle returns a coordinator that is not running, with a trusted
// session "s1" in edge-a's cluster, so its state transitions can be driven
// by hand.
func newIdle(t *testing.T) (*Coordinator, *gwState) {
	t.Helper()
	c, err := New(validOptions())
	if err != nil {
		t.Fatal(err)
	}
	g := c.byName["edge-a"]
	g.session, g.sessionOK = "s1", true
	return c, g
}

func lockPair(session string) *api.KVPair {
	return &api.KVPair{Key: "gwsync/gateways/edge-a/lock", Session: session,
		Value: mirror.Holder{Replica: "x", Since: time.Unix(1, 0)}.Encode()}
}

func TestObserveLock_LeaseFollowsTheLock(t *testing.T) {
	c, g := newIdle(t)
	changed := c.Changed()
	c.observeLock(g, lockPair("s1"), 10, true)
	l, ok := c.Lease("edge-a")
	if !ok || l.Session != "s1" || l.Key != g.lockKey {
		t.Fatalf("lease after seeing our session hold the lock: %+v, %v", l, ok)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed not closed by a new lease")
	}
	if c.Role() != RoleOwner {
		t.Errorf("role %s, want %s", c.Role(), RoleOwner)
	}
	// A watch result older than what was applied is ignored.
	c.observeLock(g, nil, 5, false)
	if l.Err() != nil {
		t.Fatalf("stale watch result ended the lease: %v", l.Err())
	}
	// A newer one showing another holder ends it.
	c.observeLock(g, lockPair("s2"), 12, false)
	if !errors.Is(l.Err(), ErrLockLost) {
		t.Fatalf("lease after the lock moved: %v, want %v", l.Err(), ErrLockLost)
	}
	if got := testutil.ToFloat64(c.m.transitions.WithLabelValues("edge-a", eventLost)); got != 1 {
		t.Errorf("lost transitions = %v, want 1", got)
	}
	if c.Role() != RoleStandby {
		t.Errorf("role %s, want %s", c.Role(), RoleStandby)
	}
	if o, _ := c.Owner("edge-a"); !o.Held || o.Self || o.Replica != "x" || o.LastEvent != eventLost {
		t.Errorf("owner %+v: want held by x, not us, last event lost", o)
	}
	// A direct read that raced with the change above and answers late is
	// as stale as a late watch result.
	c.observeLock(g, lockPair("s1"), 10, false)
	if o, _ := c.Owner("edge-a"); o.Self || !o.Held {
		t.Errorf("a late read undid a newer one: %+v", o)
	}
	// An index that went backwards (restarted cluster) is applied.
	c.observeLock(g, nil, 3, true)
	if o, _ := c.Owner("edge-a"); o.Held {
		t.Errorf("owner after a reset read showing the lock free: %+v", o)
	}
}

func TestFenced_EndsTheLeaseAndRequiresARead(t *testing.T) {
	c, g := newIdle(t)
	c.observeLock(g, lockPair("s1"), 10, true)
	l, _ := c.Lease("edge-a")
	c.Fenced("edge-a", "other-session") // not this lease's session: ignored
	if l.Err() != nil {
		t.Fatalf("a fence report for another session ended the lease: %v", l.Err())
	}
	c.Fenced("edge-a", "s1")
	if !errors.Is(l.Err(), ErrFenced) || !errors.Is(context.Cause(l.Context()), ErrFenced) {
		t.Fatalf("lease after Fenced: %v", l.Err())
	}
	// The watch still says s1 holds it; no new lease until a direct read.
	c.observeLock(g, lockPair("s1"), 11, false)
	if _, ok := c.Lease("edge-a"); ok {
		t.Error("lease re-issued from the watch right after a fence, without a direct read")
	}
	c.Fenced("no-such-gateway", "s1") // logged, no panic
	if got := testutil.ToFloat64(c.m.transitions.WithLabelValues("edge-a", eventFenced)); got != 1 {
		t.Errorf("fenced transitions = %v, want 1", got)
	}
}

func TestSessionSuspect_EndsTheLease(t *testing.T) {
	c, g := newIdle(t)
	c.observeLock(g, lockPair("s1"), 10, true)
	l, _ := c.Lease("edge-a")
	c.sessionSuspect(g)
	if !errors.Is(l.Err(), ErrSessionLost) {
		t.Fatalf("lease after the session went unrenewed for a TTL: %v", l.Err())
	}
	// Renewed again (a short outage): the lock is read before it is ours.
	c.sessionRenewed(g)
	if _, ok := c.Lease("edge-a"); ok || !g.verify {
		t.Errorf("lease re-issued without a direct read (verify=%v)", g.verify)
	}
}

func TestRun_Twice(t *testing.T) {
	c, _ := newIdle(t)
	c.running = true
	if err := c.Run(context.Background()); err == nil {
		t.Error("second Run: no error")
	}
}
