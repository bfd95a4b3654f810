package watch

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// waitFor polls cond until it holds, failing the test after testWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, testWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loopStatus(d *Detector, dc, loop string) (LoopStatus, bool) {
	for _, s := range d.Status() {
		if s.DC == dc && s.Loop == loop {
			return s, true
		}
	}
	return LoopStatus{}, false
}

func wantEvent(t *testing.T, e Event, dc string, services []string, resync bool) {
	t.Helper()
	if e.DC != dc || !slices.Equal(e.Services, services) || e.Resync != resync {
		t.Fatalf("event = %+v, want dc %s services %v resync %t", e, dc, services, resync)
	}
}

// Critical lists as Consul answers them: nothing failing, web down, web
// and api down.
var (
	noneFailing []Check
	webDown     = []Check{chk("n1", "service:web", "critical", "web")}
	webAPIDown  = []Check{chk("n1", "service:web", "critical", "web"), chk("n2", "service:api", "critical", "api")}
	// allChecks is the whole check list (the catalog loop's instance list).
	allChecks = []Check{
		chk("n1", "serfHealth", "passing", ""),
		chk("n1", "service:web", "passing", "web"),
		chk("n2", "service:api", "passing", "api"),
	}
)

func TestDetector_IndexRules(t *testing.T) {
	src := newFakeSource("dc1")
	reg := prometheus.NewRegistry()
	sink := newSink()
	opts := fastOptions(reg)
	d := startDetector(t, src, opts, sink.sink)

	c := src.next(t, "dc1", loopCritical)
	if c.q.Index != 0 {
		t.Fatalf("first request index = %d, want a plain read (0)", c.q.Index)
	}
	if dl, ok := c.ctx.Deadline(); !ok || time.Until(dl) > opts.CallTimeout {
		t.Errorf("plain read deadline in %s, want at most CallTimeout %s", time.Until(dl), opts.CallTimeout)
	}
	c.answer(fakeReply{checks: noneFailing, index: 0}) // an index below 1 must not be sent back
	wantEvent(t, sink.next(t), "dc1", nil, true)

	c = src.next(t, "dc1", loopCritical)
	if c.q.Index != 1 {
		t.Fatalf("after an answer with index 0, index = %d, want 1", c.q.Index)
	}
	if dl, ok := c.ctx.Deadline(); !ok || time.Until(dl) < opts.Wait+opts.Wait/16 {
		t.Errorf("blocking read deadline in %s, want at least Wait + Wait/16", time.Until(dl))
	}
	c.answer(fakeReply{checks: noneFailing, index: 10}) // moved, same content: no event

	c = src.next(t, "dc1", loopCritical)
	if c.q.Index != 10 {
		t.Fatalf("index = %d, want 10", c.q.Index)
	}
	c.answer(fakeReply{checks: noneFailing, index: 10}) // wait ran out

	c = src.next(t, "dc1", loopCritical)
	c.answer(fakeReply{checks: webDown, index: 12})
	wantEvent(t, sink.next(t), "dc1", []string{"web"}, false)

	c = src.next(t, "dc1", loopCritical)
	if c.q.Index != 12 {
		t.Fatalf("index = %d, want 12", c.q.Index)
	}
	restarted := append(slices.Clone(webDown), chk("n3", "service:db", "critical", "db"))
	c.answer(fakeReply{checks: restarted, index: 5}) // backwards: reset
	wantEvent(t, sink.next(t), "dc1", []string{"db"}, true)

	c = src.next(t, "dc1", loopCritical)
	if c.q.Index != 0 {
		t.Fatalf("after a reset, index = %d, want a plain read", c.q.Index)
	}
	c.answer(fakeReply{checks: restarted, index: 6})
	c = src.next(t, "dc1", loopCritical)
	if c.q.Index != 6 {
		t.Fatalf("index = %d, want 6", c.q.Index)
	}
	st, _ := loopStatus(d, "dc1", loopCritical)
	if st.State != StateWatching || st.Index != 6 || st.WakeUps != 6 || st.Changes != 2 || st.LastDecodedBytes != 100 {
		t.Errorf("status = %+v", st)
	}
	for result, want := range map[string]float64{wakeInitial: 2, wakeUnchanged: 1, wakeIdle: 1, wakeChanged: 1, wakeReset: 1} {
		if got := testutil.ToFloat64(d.m.wakeups.WithLabelValues("dc1", loopCritical, result)); got != want {
			t.Errorf("wakeups{result=%s} = %g, want %g", result, got, want)
		}
	}
	if got := testutil.ToFloat64(d.m.watching.WithLabelValues("dc1", loopCritical)); got != 1 {
		t.Errorf("watching = %g, want 1", got)
	}
	if got := testutil.ToFloat64(d.m.decodedBytes.WithLabelValues("dc1", loopCritical)); got != 600 {
		t.Errorf("decoded bytes = %g, want 600 (6 answers of 100)", got)
	}
}

func TestDetector_ErrorBackoffAndResync(t *testing.T) {
	src := newFakeSource("dc1")
	sink := newSink()
	d := startDetector(t, src, fastOptions(nil), sink.sink)

	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: noneFailing, index: 5})
	wantEvent(t, sink.next(t), "dc1", nil, true)

	src.next(t, "dc1", loopCritical).answer(fakeReply{err: errFake})
	c := src.next(t, "dc1", loopCritical)
	if c.q.Index != 0 {
		t.Fatalf("after an error, index = %d, want a plain read", c.q.Index)
	}
	st, _ := loopStatus(d, "dc1", loopCritical)
	if st.ConsecutiveFailures != 1 || !strings.Contains(st.LastError, "connection refused") || st.LastErrorAt.IsZero() {
		t.Errorf("status after one failure = %+v", st)
	}
	c.answer(fakeReply{err: errFake})
	c = src.next(t, "dc1", loopCritical)
	if st, _ := loopStatus(d, "dc1", loopCritical); st.ConsecutiveFailures != 2 {
		t.Errorf("failures = %d, want 2", st.ConsecutiveFailures)
	}
	c.answer(fakeReply{checks: []Check{chk("n2", "service:api", "critical", "api")}, index: 9})
	// Recovered: the changes made meanwhile, and a Resync for whatever the
	// lists cannot show.
	wantEvent(t, sink.next(t), "dc1", []string{"api"}, true)
	src.next(t, "dc1", loopCritical) // back to blocking
	st, _ = loopStatus(d, "dc1", loopCritical)
	if st.ConsecutiveFailures != 0 || st.LastError == "" || !st.Healthy() {
		t.Errorf("status after recovery = %+v", st)
	}
	if got := testutil.ToFloat64(d.m.errors.WithLabelValues("dc1", loopCritical, errOther)); got != 2 {
		t.Errorf("errors = %g, want 2", got)
	}
}

func TestDetector_RequestTimeoutIsAnError(t *testing.T) {
	src := newFakeSource("dc1")
	sink := newSink()
	opts := fastOptions(nil)
	opts.CallTimeout = 20 * time.Millisecond
	d := startDetector(t, src, opts, sink.sink)

	c := src.next(t, "dc1", loopCritical) // never answered: the plain read's deadline passes
	<-c.ctx.Done()
	waitFor(t, "a timeout counted", func() bool {
		return testutil.ToFloat64(d.m.errors.WithLabelValues("dc1", loopCritical, errTimeout)) == 1
	})
	st, _ := loopStatus(d, "dc1", loopCritical)
	if !strings.Contains(st.LastError, "no answer within 20ms") {
		t.Errorf("last error = %q", st.LastError)
	}
}

func TestBackoff(t *testing.T) {
	minD, maxD := 10*time.Millisecond, time.Second
	for failures := 1; failures <= 70; failures++ {
		limit := maxD
		if failures <= 7 {
			limit = minD << (failures - 1)
		}
		for range 50 {
			if d := backoff(minD, maxD, failures); d <= 0 || d > limit {
				t.Fatalf("backoff(failure %d) = %s, want in (0, %s]", failures, d, limit)
			}
		}
	}
}

func TestDetector_RateLimit(t *testing.T) {
	src := newFakeSource("dc1")
	opts := fastOptions(nil)
	opts.Rate, opts.Burst = 40, 1
	startDetector(t, src, opts, newSink().sink)

	// A write storm: every request is answered at once with a new index
	// and new content.
	const requests = 21
	start := time.Now()
	for i := range requests {
		cs := [][]Check{noneFailing, webDown}[i%2]
		src.next(t, "dc1", loopCritical).answer(fakeReply{checks: cs, index: uint64(10 + i)})
	}
	src.next(t, "dc1", loopCritical)
	// 21 answered + 1 more requests with a bucket of 1 at 40/s: at least
	// 21/40 s.
	if el, floor := time.Since(start), time.Duration(requests)*time.Second/40; el < floor*9/10 {
		t.Errorf("%d requests in %s, want at least %s (40/s)", requests+1, el, floor)
	}
}

func TestDetector_SlowSinkCoalesces(t *testing.T) {
	src := newFakeSource("dc1")
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Event
	sink := func(e Event) {
		mu.Lock()
		first := len(got) == 0
		got = append(got, e)
		mu.Unlock()
		if first {
			<-release // the consumer is busy with the first event
		}
	}
	var clock sync.Mutex
	now := time.Unix(1000, 0)
	setNow := func(sec int64) { clock.Lock(); now = time.Unix(sec, 0); clock.Unlock() }
	opts := fastOptions(nil)
	opts.Now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	d := startDetector(t, src, opts, sink)

	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: noneFailing, index: 5})
	waitFor(t, "first event delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })

	// The loops keep going while the sink is blocked. Each answer is
	// processed by the time the loop sends its next request.
	setNow(1002)
	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: webDown, index: 6})
	c := src.next(t, "dc1", loopCritical)
	setNow(1003)
	c.answer(fakeReply{checks: webAPIDown, index: 7})
	src.next(t, "dc1", loopCritical)
	setNow(1004)
	src.next(t, "dc1", loopCatalog).answer(fakeReply{services: map[string][]string{"web": nil, "api": nil}, index: 3})
	src.next(t, "dc1", stateAny).answer(fakeReply{checks: allChecks, index: 8})
	src.next(t, "dc1", loopCatalog)
	if got := testutil.ToFloat64(d.m.coalesced.WithLabelValues("dc1")); got != 2 {
		t.Errorf("coalesced = %g, want 2", got)
	}
	close(release)
	waitFor(t, "second event delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	defer mu.Unlock()
	e := got[1]
	wantEvent(t, e, "dc1", []string{"api", "web"}, true)
	if want := time.Unix(1002, 0); !e.At.Equal(want) {
		t.Errorf("coalesced event At = %s, want the earliest detection's %s", e.At, want)
	}
	// An answer must reflect every merged change: one that started between
	// the earliest and the latest detection may predate the later ones.
	if want := time.Unix(1004, 0); !e.Latest.Equal(want) {
		t.Errorf("coalesced event Latest = %s, want the latest detection's %s", e.Latest, want)
	}
}

func TestDetector_DatacenterSetChanges(t *testing.T) {
	src := newFakeSource("dc1")
	reg := prometheus.NewRegistry()
	opts := fastOptions(reg)
	opts.DCRefresh = 10 * time.Millisecond
	sink := newSink()
	d := startDetector(t, src, opts, sink.sink)

	c1 := src.next(t, "dc1", loopCritical)
	src.setDCs(nil, "dc1", "dc2")
	src.next(t, "dc2", loopCritical).answer(fakeReply{checks: noneFailing, index: 4})
	wantEvent(t, sink.next(t), "dc2", nil, true)
	if got := d.DCs(); !slices.Equal(got, []string{"dc1", "dc2"}) {
		t.Errorf("DCs = %v", got)
	}

	src.setDCs(nil, "dc2")
	select {
	case <-c1.ctx.Done(): // dc1's request was cancelled
	case <-time.After(testWait):
		t.Fatal("dc1's loop still running after dc1 left")
	}
	wantEvent(t, sink.next(t), "dc1", nil, true)
	waitFor(t, "dc1 gone from status", func() bool { _, ok := loopStatus(d, "dc1", loopCritical); return !ok })
	if _, ok := loopStatus(d, "dc2", loopCritical); !ok {
		t.Error("dc2 not in status")
	}
	for _, s := range d.Status() {
		if s.DC != "dc2" {
			t.Errorf("status of %s/%s after it left", s.DC, s.Loop)
		}
	}
	if n := testutil.CollectAndCount(d.m.watching); n > 2 {
		t.Errorf("watching series = %d, want at most dc2's two", n)
	}

	// A failed or empty datacenter list keeps the current set.
	before := testutil.ToFloat64(d.m.dcRefresh.WithLabelValues("error"))
	src.setDCs(errFake)
	waitFor(t, "a failed refresh", func() bool { return testutil.ToFloat64(d.m.dcRefresh.WithLabelValues("error")) > before })
	src.setDCs(nil)
	before = testutil.ToFloat64(d.m.dcRefresh.WithLabelValues("error"))
	waitFor(t, "an empty refresh", func() bool { return testutil.ToFloat64(d.m.dcRefresh.WithLabelValues("error")) > before })
	if got := d.DCs(); !slices.Equal(got, []string{"dc2"}) {
		t.Errorf("DCs after failed refreshes = %v, want [dc2]", got)
	}
}

func TestDetector_CatalogLoopReadsInstancesWhenRegistrationsChange(t *testing.T) {
	src := newFakeSource("dc1")
	sink := newSink()
	d := startDetector(t, src, fastOptions(nil), sink.sink)
	services := map[string][]string{"web": nil, "api": nil}

	src.next(t, "dc1", loopCatalog).answer(fakeReply{services: services, index: 5})
	c := src.next(t, "dc1", stateAny)
	if c.q.Index != 0 {
		t.Fatalf("instance list read with index %d, want a plain read", c.q.Index)
	}
	c.answer(fakeReply{checks: allChecks, index: 9})
	wantEvent(t, sink.next(t), "dc1", nil, true)

	// The wait ran out (same index): no instance list; the next request
	// is the catalog's again (an instance read would block the loop on
	// the unanswered "any" channel, and this would time out).
	c = src.next(t, "dc1", loopCatalog)
	if c.q.Index != 5 {
		t.Fatalf("catalog index = %d, want 5", c.q.Index)
	}
	c.answer(fakeReply{services: services, index: 5})
	c = src.next(t, "dc1", loopCatalog)

	// A registration moved the index without changing names or tags: a
	// new web instance on n3, found in the instance list.
	c.answer(fakeReply{services: services, index: 7})
	withNewWeb := append(slices.Clone(allChecks), chk("n3", "service:web", "passing", "web"))
	src.next(t, "dc1", stateAny).answer(fakeReply{checks: withNewWeb, index: 12})
	wantEvent(t, sink.next(t), "dc1", []string{"web"}, false)

	// A node-level check failing names the services on that node, known
	// from the instance list.
	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: noneFailing, index: 12})
	wantEvent(t, sink.next(t), "dc1", nil, true)
	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: []Check{chk("n1", "serfHealth", "critical", "")}, index: 13})
	wantEvent(t, sink.next(t), "dc1", []string{"web"}, false)
	if n, known := d.Usable("dc1", "web"); n != 1 || !known {
		t.Errorf("Usable(web) with n1 down = %d, %t; want 1 (n3), true", n, known)
	}
	st, _ := loopStatus(d, "dc1", loopCatalog)
	if st.Index != 7 || st.WakeUps != 3 {
		t.Errorf("catalog status = %+v", st)
	}
}

func TestDetector_Usable(t *testing.T) {
	src := newFakeSource("dc1")
	sink := newSink()
	opts := fastOptions(nil)
	opts.OnlyPassing = true
	d := startDetector(t, src, opts, sink.sink)

	if _, known := d.Usable("dc1", "web"); known {
		t.Error("Usable known before any list")
	}
	src.next(t, "dc1", loopCatalog).answer(fakeReply{services: map[string][]string{"web": nil, "api": nil, "nocheck": nil}, index: 5})
	src.next(t, "dc1", stateAny).answer(fakeReply{checks: append(slices.Clone(allChecks), chk("n2", "service:web", "warning", "web")), index: 5})
	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: noneFailing, index: 5})
	src.next(t, "dc1", loopWarning).answer(fakeReply{checks: []Check{chk("n2", "service:web", "warning", "web")}, index: 5})
	waitFor(t, "every list read", func() bool {
		_, known := d.Usable("dc1", "web")
		return known
	})
	tests := []struct {
		dc, service string
		n           int
		known       bool
	}{
		{dc: "dc1", service: "web", n: 1, known: true}, // n2's is warning
		{dc: "dc1", service: "api", n: 1, known: true},
		{dc: "dc1", service: "nocheck", n: 0, known: false},
		{dc: "dc1", service: "absent", n: 0, known: true},
		{dc: "dc9", service: "web", n: 0, known: false},
	}
	for _, tt := range tests {
		if n, known := d.Usable(tt.dc, tt.service); n != tt.n || known != tt.known {
			t.Errorf("Usable(%s, %s) = %d, %t; want %d, %t", tt.dc, tt.service, n, known, tt.n, tt.known)
		}
	}
	src.next(t, "dc1", loopCritical).answer(fakeReply{checks: []Check{chk("n2", "service:api", "critical", "api")}, index: 6})
	waitFor(t, "api down seen", func() bool {
		n, known := d.Usable("dc1", "api")
		return n == 0 && known
	})
}

func TestNew_RejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "negative wait", opts: Options{Wait: -time.Second}, want: "Wait is negative"},
		{name: "wait above cap", opts: Options{Wait: 11 * time.Minute}, want: "above Consul's cap"},
		{name: "backoff bounds", opts: Options{BackoffMin: time.Minute, BackoffMax: time.Second}, want: "BackoffMax 1s is below BackoffMin 1m0s"},
		{name: "negative rate", opts: Options{Rate: -1}, want: "Rate (-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(newFakeSource(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New without a source succeeded")
	}
}

func TestDetector_RunOnceWithSink(t *testing.T) {
	d, err := New(newFakeSource(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(t.Context(), nil); err == nil {
		t.Error("Run without a sink succeeded")
	}
	startDetectorOn(t, d, func(Event) {})
	waitFor(t, "running", d.running.Load)
	if err := d.Run(t.Context(), func(Event) {}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run = %v, want an error", err)
	}
}

// A loop's error counters exist from its start, at zero: an alert or a
// dashboard on increase(gwsync_watch_errors_total) sees the first error
// (a series born at 1 has no increase), and the panel is not empty.
func TestDetector_ErrorSeriesFromStart(t *testing.T) {
	src := newFakeSource("dc1")
	reg := prometheus.NewRegistry()
	startDetector(t, src, fastOptions(reg), newSink().sink)
	src.next(t, "dc1", loopCritical) // the loop runs
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "gwsync_watch_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["dc"]+"/"+l["loop"]+"/"+l["result"]] = m.GetCounter().GetValue()
		}
	}
	for _, result := range []string{errOther, errTimeout} {
		key := "dc1/" + loopCritical + "/" + result
		if v, ok := got[key]; !ok || v != 0 {
			t.Errorf("gwsync_watch_errors_total{%s} = %v (present %v) before any error, want 0; series %v", key, v, ok, got)
		}
	}
}
