package syncer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/harness"
	"github.com/hashicorp/consul/api"
)

func newSharedEnv(t *testing.T, o SharedOptions) (*Shared, *fakePublic, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), step: time.Millisecond}
	pub := newFakePublic(clock.Now, "dc1", "dc2")
	pub.templates["dc1"] = true
	pub.register("dc1", inst("web", "n1", "web-1", 80))
	o.Now = clock.Now
	return NewShared(pub, o), pub, clock
}

// One execution per (service, DC) within the share window, errors
// included; an answer older than a caller's minAt is not reused.
func TestShared_Window(t *testing.T) {
	s, pub, clock := newSharedEnv(t, SharedOptions{Window: time.Second})
	ctx := context.Background()
	for range 3 {
		if _, err := s.Execute(ctx, "dc1", "web", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := pub.count("execute", "dc1", "web"); n != 1 {
		t.Errorf("%d executions within the window, want 1", n)
	}
	if _, err := s.Execute(ctx, "dc1", "web", clock.Now()); err != nil || pub.count("execute", "dc1", "web") != 2 {
		t.Errorf("an answer older than minAt was reused (%v)", err)
	}
	clock.Advance(2 * time.Second)
	_, _ = s.Execute(ctx, "dc1", "web", time.Time{})
	if pub.count("execute", "dc1", "web") != 3 {
		t.Error("an answer older than the window was reused")
	}
	pub.failOp("execute", "dc1", errors.New("rpc error"), "api")
	_, err1 := s.Execute(ctx, "dc1", "api", time.Time{})
	_, err2 := s.Execute(ctx, "dc1", "api", time.Time{})
	if err1 == nil || err2 == nil || pub.count("execute", "dc1", "api") != 1 {
		t.Errorf("a failed execution is not shared: %v %v, %d calls", err1, err2, pub.count("execute", "dc1", "api"))
	}
	s.Prune()
	clock.Advance(2 * time.Second)
	s.Prune()
	s.mu.Lock()
	left := len(s.cache)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d cached results left after the window", left)
	}
	// Executions prune the cache as they go, at most once a window: a
	// full reconcile does not hold every answer until it ends.
	for i := range 50 {
		pub.register("dc1", inst(fmt.Sprintf("svc-%d", i), "n1", fmt.Sprintf("svc-%d-1", i), 80))
		if _, err := s.Execute(ctx, "dc1", fmt.Sprintf("svc-%d", i), time.Time{}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(100 * time.Millisecond)
	}
	s.mu.Lock()
	left = len(s.cache)
	s.mu.Unlock()
	if left > 21 { // one window (10 answers) before the last prune, one since
		t.Errorf("%d cached results after 50 executions over 5 windows, want at most 21", left)
	}
	// Confirmation reads are never shared.
	for range 2 {
		if _, _, err := s.Usable(ctx, "dc1", "web"); err != nil {
			t.Fatal(err)
		}
	}
	if n := pub.count("usable", "dc1", "web"); n != 2 {
		t.Errorf("%d confirmation reads, want 2", n)
	}
}

// A DC whose calls fail is backed off: calls inside the backoff fail at
// once without reaching it; answers about the request itself (a missing
// template, a 403) are not failures of the DC.
func TestShared_Backoff(t *testing.T) {
	var ups []bool
	s, pub, clock := newSharedEnv(t, SharedOptions{BackoffMin: time.Second, BackoffMax: 8 * time.Second,
		OnDC: func(dc string, up bool) { ups = append(ups, up) }})
	ctx := context.Background()
	pub.failOp("catalog", "dc2", errors.New("no path to datacenter"))
	if _, err := s.Catalog(ctx, "dc2", time.Time{}); err == nil || errors.Is(err, ErrBackoff) {
		t.Fatalf("first failure: %v", err)
	}
	_, err := s.Catalog(ctx, "dc2", clock.Now())
	if !errors.Is(err, ErrBackoff) || pub.count("catalog", "dc2") != 1 {
		t.Fatalf("inside the backoff: %v, %d calls", err, pub.count("catalog", "dc2"))
	}
	h := s.Health()
	if len(h) != 1 || h[0].Datacenter != "dc2" || h[0].Failures != 1 || h[0].RetryAt.IsZero() || h[0].LastError == "" {
		t.Errorf("health %+v", h)
	}
	if d := h[0].RetryAt.Sub(h[0].LastErrAt); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("first backoff %v, want within [0.5s, 1s]", d)
	}
	clock.Advance(time.Second + time.Millisecond)
	pub.failOp("catalog", "dc2", nil)
	if _, err := s.Catalog(ctx, "dc2", clock.Now()); err != nil {
		t.Fatalf("after the backoff: %v", err)
	}
	if h := s.Health(); h[0].Failures != 0 || !h[0].RetryAt.IsZero() {
		t.Errorf("health after a success %+v", h[0])
	}
	if len(ups) != 2 || ups[0] || !ups[1] {
		t.Errorf("OnDC calls %v, want [false true]", ups)
	}

	pub.locked(func() { pub.templates["dc2"] = false })
	_, err = s.Execute(ctx, "dc2", "web", time.Time{})
	if !errors.Is(err, ErrQueryNotFound) {
		t.Fatalf("execute: %v", err)
	}
	pub.failOp("usable", "dc2", api.StatusError{Code: http.StatusForbidden, Body: "Permission denied"})
	_, _, _ = s.Usable(ctx, "dc2", "web")
	if h := s.Health(); h[0].Failures != 0 {
		t.Errorf("a 404 or 403 counted as a failure of the DC: %+v", h[0])
	}
}

// The shared call is detached from the caller that started it: its
// cancellation fails only itself; a caller that joined gets the answer.
func TestShared_Detached(t *testing.T) {
	s, pub, _ := newSharedEnv(t, SharedOptions{Window: time.Second})
	g := newGate(pub, "web")
	first, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Execute(first, "dc1", "web", time.Time{}); errc <- err }()
	g.wait(t)
	type result struct {
		a   Answer
		err error
	}
	joined := make(chan result, 1)
	go func() {
		a, err := s.Execute(context.Background(), "dc1", "web", time.Time{})
		joined <- result{a, err}
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled caller got %v", err)
	}
	g.open()
	r := <-joined
	if r.err != nil || len(r.a.Endpoints) != 1 {
		t.Errorf("the joined caller got %+v %v", r.a, r.err)
	}
	if n := pub.count("execute", "dc1", "web"); n != 1 {
		t.Errorf("%d executions, want 1", n)
	}
	if dc, ok := s.AnsweredBy("dc1", "web"); !ok || dc != "dc1" {
		t.Errorf("AnsweredBy = %q %v", dc, ok)
	}
}

// A datacenter list the agent does not give (hung, dead) marks every DC
// known so far down: no DC answers through that agent, and a cycle stops
// at the list before any per-DC read could say so. A refused list (a 403:
// an answer) marks nothing.
func TestShared_DatacenterListFailureMarksKnownDCsDown(t *testing.T) {
	downs := map[string]int{}
	s, pub, _ := newSharedEnv(t, SharedOptions{OnDC: func(dc string, up bool) {
		if !up {
			downs[dc]++
		}
	}})
	ctx := context.Background()
	if _, err := s.Catalog(ctx, "dc1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	pub.failOp("datacenters", "", api.StatusError{Code: http.StatusForbidden, Body: "Permission denied"})
	if _, err := s.Datacenters(ctx, time.Time{}); err == nil {
		t.Fatal("the refused list did not fail")
	}
	if len(downs) != 0 {
		t.Fatalf("a refused list marked DCs down: %v", downs)
	}
	pub.failOp("datacenters", "", context.DeadlineExceeded)
	if _, err := s.Datacenters(ctx, time.Time{}); err == nil {
		t.Fatal("the timed-out list did not fail")
	}
	if downs["dc1"] != 1 || len(downs) != 1 {
		t.Errorf("down reports %v, want dc1 once (the only DC known)", downs)
	}
}

// A caller that needs an answer newer than minAt never joins a call in
// flight that started before minAt, even after a newer call (which it
// could have joined) has finished: each call has a name of its own.
// Before, the newer call's bookkeeping hid the older one, and the caller
// joined it: an event round applied an answer from before its change.
func TestShared_NeverJoinsAnOlderCall(t *testing.T) {
	s, pub, clock := newSharedEnv(t, SharedOptions{Window: time.Minute})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var calls atomic.Int32
	pub.beforeExecute = func(dc, service string) {
		if calls.Add(1) == 1 { // A: a slow execution
			entered <- struct{}{}
			<-release
		}
	}
	t.Cleanup(func() { close(release) })
	go func() { _, _ = s.Execute(context.Background(), "dc1", "web", time.Time{}) }() // A
	<-entered
	if _, err := s.Execute(context.Background(), "dc1", "web", clock.Now()); err != nil { // B, newer than A
		t.Fatal(err)
	}
	minAt := clock.Now() // C reacts to a change after A started
	done := make(chan struct{})
	go func() { defer close(done); _, _ = s.Execute(context.Background(), "dc1", "web", minAt) }()
	harness.Eventually(t, 5*time.Second, func() error {
		// A counts only once released: B and C ran calls of their own.
		if n := pub.count("execute", "dc1", "web"); n < 2 {
			return fmt.Errorf("%d execution(s) besides the blocked A: the caller newer than A's start joined A's call in flight", n)
		}
		return nil
	})
	<-done
}
