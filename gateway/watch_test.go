package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

func healthPath(service string) string { return "/v1/health/service/" + service }

// resolvePort waits until service resolves to one instance on port.
func resolvePort(t *testing.T, r *Resolver, service string, port int, src Source) {
	t.Helper()
	harness.Eventually(t, 5*time.Second, func() error {
		a, err := r.Resolve(context.Background(), service)
		if err != nil || len(a.Instances) != 1 || a.Instances[0].Port != port || a.Source != src {
			return fmt.Errorf("%s: %d instances from %s (%+v), %v; want port %d from %s", service, len(a.Instances), a.Source, a.Instances, err, port, src)
		}
		return nil
	})
}

func waitUsable(t *testing.T, r *Resolver, usable bool) {
	t.Helper()
	harness.Eventually(t, 5*time.Second, func() error {
		if s := r.Status(); s.LocalUsable != usable {
			return fmt.Errorf("local usable %v (%s), want %v", s.LocalUsable, s.LocalReason, usable)
		}
		return nil
	})
}

// A change costs reads of the changed services only, whatever the number
// of services held, and no public call.
func TestWatch_RereadsOnlyChangedServices(t *testing.T) {
	e := newFakeEnv(t)
	const n = 50
	for i := range n {
		e.mirror.set(t, fmt.Sprintf("svc-%02d", i), []int{1000 + i}, i == n-1)
	}
	r := e.run(t, e.options())
	waitUsable(t, r, true)
	for i := range n {
		resolvePort(t, r, fmt.Sprintf("svc-%02d", i), 1000+i, SourceLocal)
	}
	before := map[string]int{}
	for i := range n {
		before[fmt.Sprintf("svc-%02d", i)] = e.local.pathCount(healthPath(fmt.Sprintf("svc-%02d", i)))
	}
	e.mirror.set(t, "svc-07", []int{2007}, false)
	e.mirror.set(t, "not-held", []int{1}, false)
	resolvePort(t, r, "svc-07", 2007, SourceLocal)
	for s, b := range before {
		got := e.local.pathCount(healthPath(s)) - b
		switch {
		case s == "svc-07" && got != 1:
			t.Errorf("%s read %d times after its change, want once", s, got)
		case s != "svc-07" && got != 0:
			t.Errorf("%s read %d times after another service changed, want 0", s, got)
		}
	}
	if got := e.local.pathCount(healthPath("not-held")); got != 0 {
		t.Errorf("a changed service nobody holds was read %d times", got)
	}
	if got := e.public.count("query"); got != 0 {
		t.Errorf("%d public calls with a usable mirror covering everything", got)
	}
}

// A feed that restarted (a new controller on an emptied cluster) cannot
// say what changed: every held service is read again.
func TestWatch_FeedResetRereadsAll(t *testing.T) {
	e := newFakeEnv(t)
	for i := range 5 {
		e.mirror.set(t, fmt.Sprintf("svc-%d", i), []int{1000 + i}, i == 4)
	}
	r := e.run(t, e.options())
	waitUsable(t, r, true)
	for i := range 5 {
		resolvePort(t, r, fmt.Sprintf("svc-%d", i), 1000+i, SourceLocal)
	}
	// Everything changes behind a fresh feed (Seq 1 again), coverage kept.
	e.mirror.mu.Lock()
	e.mirror.changes = mirror.Changes{}
	e.mirror.mu.Unlock()
	for i := range 5 {
		e.local.setService(fmt.Sprintf("svc-%d", i), e.mirror.entries(t, fmt.Sprintf("svc-%d", i), []int{3000 + i}))
	}
	e.mirror.set(t, "svc-0", []int{3000}, true)
	for i := range 5 {
		resolvePort(t, r, fmt.Sprintf("svc-%d", i), 3000+i, SourceLocal)
	}
}

// A storm of writes cannot spin the watch: its rounds are rate-limited
// (a burst, then one per MinWatchInterval), and the last write is seen.
func TestWatch_StormIsRateLimited(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, true)
	opts := e.options()
	opts.MinWatchInterval = 50 * time.Millisecond
	r := e.run(t, opts)
	waitUsable(t, r, true)
	resolvePort(t, r, "web", 80, SourceLocal)
	path := "/v1/kv/" + mirror.GatewayPrefix(mirror.DefaultKVPrefix, fakeGateway)
	before := e.local.pathCount(path)
	begin := time.Now()
	writes := 0
	for ; time.Since(begin) < 500*time.Millisecond; writes++ {
		e.mirror.set(t, "web", []int{81 + writes%2}, false) // each write wakes the watch
	}
	e.mirror.set(t, "web", []int{99}, false)
	resolvePort(t, r, "web", 99, SourceLocal)
	took := time.Since(begin)
	rounds := e.local.pathCount(path) - before
	limit := watchBurst + int(took/opts.MinWatchInterval) + 2
	t.Logf("%d watch rounds for %d writes in %v (limit %d)", rounds, writes, took.Round(time.Millisecond), limit)
	if rounds > limit {
		t.Fatalf("%d watch rounds in %v, want at most %d", rounds, took, limit)
	}
}

// The mirror decides for the services it covers, even "none" (no public
// call); for the others the public cluster answers, never the mirror.
func TestResolver_CoverageDecides(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, false)
	e.mirror.set(t, "gone", nil, true)
	e.public.setAnswer("gwsync-gone", publicEntries("gone", 70))
	e.public.setAnswer("gwsync-billing", publicEntries("billing", 90))
	r := e.run(t, e.options())
	waitUsable(t, r, true)

	a, err := r.Resolve(context.Background(), "gone")
	if err != nil || !a.Empty() || a.Source != SourceLocal {
		t.Fatalf("covered gone: %d instances from %s, %v; want none from local", len(a.Instances), a.Source, err)
	}
	a, err = r.Resolve(context.Background(), "billing")
	if err != nil || len(a.Instances) != 1 || a.Source != SourcePublic {
		t.Fatalf("uncovered billing: %d instances from %s, %v; want 1 from public", len(a.Instances), a.Source, err)
	}
	if got := e.local.pathCount(healthPath("billing")); got != 0 {
		t.Fatalf("the mirror was asked %d times about a service it does not cover", got)
	}
	if got := e.public.pathCount("/v1/query/gwsync-gone/execute"); got != 0 {
		t.Fatalf("the public cluster was asked %d times about a covered service with no instances", got)
	}
	// Remembered, briefly, without a watch: a burst costs one lookup.
	for range 100 {
		if _, err := r.Resolve(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
	}
	if got, st := e.local.pathCount(healthPath("gone")), r.Status(); got != 1 || st.Services != 1 || st.Negative != 1 {
		t.Fatalf("gone read %d times, status %+v; want 1 read, 1 held (billing), 1 negative", got, st)
	}
	// Instances appear: the change feed drops the negative answer at once.
	e.mirror.set(t, "gone", []int{71}, false)
	resolvePort(t, r, "gone", 71, SourceLocal)
}

// The public cluster sees at most PublicBurst calls at once and PublicRate
// a second; lookups beyond get an error at once (or the held answer),
// never a queue.
func TestResolver_PublicRateLimit(t *testing.T) {
	e := newFakeEnv(t)
	e.public.setDelay("query", 50*time.Millisecond)
	for i := range 50 {
		e.public.setAnswer(fmt.Sprintf("gwsync-svc-%d", i), publicEntries(fmt.Sprintf("svc-%d", i), 1000+i))
	}
	opts := e.options()
	opts.PublicRate, opts.PublicBurst = 1, 5
	r := e.run(t, opts) // no marker: everything goes to the public cluster
	waitUsable(t, r, false)

	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		ok, busy       int
		slowestRefusal time.Duration
	)
	for i := range 50 {
		wg.Go(func() {
			begin := time.Now()
			_, err := r.Resolve(context.Background(), fmt.Sprintf("svc-%d", i))
			took := time.Since(begin)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrPublicBusy):
				busy++
				slowestRefusal = max(slowestRefusal, took)
			default:
				t.Errorf("svc-%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d answered, %d refused (slowest refusal %v), %d public calls", ok, busy, slowestRefusal, e.public.count("query"))
	if got := e.public.count("query"); got > 6 || ok > 6 || ok+busy != 50 {
		t.Fatalf("%d public calls, %d answered, %d refused; want at most 5 (+1 refilled) calls", got, ok, busy)
	}
	if slowestRefusal > time.Second {
		t.Fatalf("a refused lookup took %v, want an answer at once", slowestRefusal)
	}
}

// With the mirror unusable, held services are refreshed from the public
// cluster only when looked up (and at most every PublicPollInterval): no
// lookups, no public calls.
func TestResolver_PublicRefreshFollowsDemand(t *testing.T) {
	e := newFakeEnv(t)
	for i := range 20 {
		e.public.setAnswer(fmt.Sprintf("gwsync-svc-%d", i), publicEntries(fmt.Sprintf("svc-%d", i), 1000+i))
	}
	opts := e.options()
	opts.PublicPollInterval = 100 * time.Millisecond
	r := e.run(t, opts)
	waitUsable(t, r, false)
	for i := range 20 {
		resolvePort(t, r, fmt.Sprintf("svc-%d", i), 1000+i, SourcePublic)
	}
	calls := e.public.count("query")
	<-time.After(10 * opts.PublicPollInterval) // idle period measured, not a synchronisation
	if got := e.public.count("query"); got != calls {
		t.Fatalf("%d public calls while nothing was looked up", got-calls)
	}
	e.public.setAnswer("gwsync-svc-3", publicEntries("svc-3", 3333))
	resolvePort(t, r, "svc-3", 3333, SourcePublic)
	if got := e.public.count("query") - calls; got < 1 || got > 3 {
		t.Fatalf("%d public calls to refresh one looked-up service, want 1 (or a couple while polling)", got)
	}
}

// A hung local cluster (accepts, never answers) trips the breaker through
// the probe within a few probe intervals; held answers are served all
// along, then refreshed from the public cluster.
func TestResolver_HungLocalProbe(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, true)
	e.public.setAnswer("gwsync-web", publicEntries("web", 8080))
	r := e.run(t, e.options())
	waitUsable(t, r, true)
	resolvePort(t, r, "web", 80, SourceLocal)
	e.local.setHang(true)
	begin := time.Now()
	resolvePort(t, r, "web", 8080, SourcePublic)
	t.Logf("public answer %v after the local cluster hung (probe every 100ms)", time.Since(begin).Round(time.Millisecond))
	if s := r.Status(); s.LocalBreaker != "open" {
		t.Fatalf("status %+v, want the local breaker open", s)
	}
	e.local.setHang(false)
	resolvePort(t, r, "web", 80, SourceLocal)
}

// A held service the local cluster refuses to show (ACL-filtered) after a
// change is unvouched, not retried: the watch moves on, and later changes
// of other services arrive at once.
func TestWatch_RefusedServiceDoesNotStallTheFeed(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, false)
	e.mirror.set(t, "secret", []int{90}, true)
	opts := e.options()
	opts.Local = filteredClient(t, e.local, healthPath("secret"))
	opts.Public = e.public.client()
	e.public.setAnswer("gwsync-secret", publicEntries("secret", 91))
	r := e.run(t, opts)
	waitUsable(t, r, true)
	resolvePort(t, r, "web", 80, SourceLocal)
	resolvePort(t, r, "secret", 91, SourcePublic) // the filtered local read fell back

	e.mirror.set(t, "secret", []int{92}, false)
	e.mirror.set(t, "web", []int{81}, false)
	resolvePort(t, r, "web", 81, SourceLocal)
	reads := e.local.pathCount(healthPath("secret"))
	<-time.After(500 * time.Millisecond) // a quiet period measured, not a synchronisation
	if got := e.local.pathCount(healthPath("secret")) - reads; got != 0 {
		t.Fatalf("secret read %d more times with nothing changing: the watch keeps retrying a refused read", got)
	}
}
