package watch

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gwsync/gwsync/test/harness"
)

// detectWithin is the bound for a public change to be seen: well
// under a second, so the whole path to a dedicated cluster stays within
// 0.5 s p99 in production (measured in measure_test.go).
const detectWithin = time.Second

// publicClient builds the detector's own client for a public server, on a
// CountingTransport, without anything from CONSUL_HTTP_* variables.
func publicClient(t testing.TB, addr string) (*api.Client, *CountingTransport) {
	t.Helper()
	ct := NewCountingTransport(&http.Transport{Proxy: nil, MaxConnsPerHost: 16, IdleConnTimeout: 90 * time.Second})
	c, err := api.NewClient(&api.Config{Address: addr, Scheme: "http", HttpClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatalf("client for %s: %v", addr, err)
	}
	return c, ct
}

// eventLog records every event with the time it arrived.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	recvd  []time.Time
	signal chan struct{}
}

func newEventLog() *eventLog { return &eventLog{signal: make(chan struct{}, 1)} }

func (l *eventLog) sink(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.recvd = append(l.recvd, time.Now())
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// mark returns a position; wait looks only at events after it.
func (l *eventLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// wait returns the first event after mark that matches, and when it
// arrived; it fails the test after timeout.
func (l *eventLog) wait(t *testing.T, mark int, timeout time.Duration, what string, match func(Event) bool) (Event, time.Time) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := mark; i < len(l.events); i++ {
			if match(l.events[i]) {
				e, at := l.events[i], l.recvd[i]
				l.mu.Unlock()
				return e, at
			}
		}
		l.mu.Unlock()
		select {
		case <-l.signal:
		case <-deadline.C:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("%s: no matching event within %s; events since mark: %+v", what, timeout, l.events[mark:])
		}
	}
}

// since returns the events after mark.
func (l *eventLog) since(mark int) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events[mark:])
}

func names(dc, service string) func(Event) bool {
	return func(e Event) bool { return e.DC == dc && slices.Contains(e.Services, service) }
}

func resyncOf(dc string) func(Event) bool {
	return func(e Event) bool { return e.DC == dc && e.Resync }
}

// consulOptions are test options: a short backoff so recovery tests end
// quickly; the default bucket, so its limits are what is tested.
func consulOptions(t testing.TB) Options {
	return Options{
		Wait: 2 * time.Minute, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		CallTimeout: 10 * time.Second, DCRefresh: time.Second, OnlyPassing: true,
		Logger: hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn, Output: testWriter{t}}),
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// allLoops are the loops of a DC with OnlyPassing.
var allLoops = []string{loopCatalog, loopCritical, loopWarning}

// waitWatching waits until every loop of every DC in dcs holds a list.
func waitWatching(t *testing.T, d *Detector, dcs ...string) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, func() error {
		for _, dc := range dcs {
			for _, loop := range allLoops {
				if s, ok := loopStatus(d, dc, loop); !ok || !s.Healthy() {
					return fmt.Errorf("%s/%s not watching yet: %+v", dc, loop, s)
				}
			}
		}
		return nil
	})
}

// startWatching runs a detector against the server at addr and waits until
// every DC's two loops hold a list (their Resync events arrived).
func startWatching(t *testing.T, addr string, dcs ...string) (*Detector, *eventLog) {
	t.Helper()
	client, _ := publicClient(t, addr)
	log := newEventLog()
	d, err := New(NewConsulSource(client, true), consulOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	startDetectorOn(t, d, log.sink)
	waitWatching(t, d, dcs...)
	return d, log
}

func TestConsul_Detector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Consul federation")
	}
	fed := harness.StartFederation(t, "dc1", "dc2")
	dc1, dc2 := fed.Server("dc1"), fed.Server("dc2")
	dc1.Register(t, harness.Instance{Node: "host-1", Address: "10.0.0.1", Service: "web", ID: "web-1", Port: 80, Tags: []string{"v1"}})
	dc1.Register(t, harness.Instance{Node: "host-2", Address: "10.0.0.2", Service: "api", ID: "api-1", Port: 81})
	d, log := startWatching(t, dc1.HTTPAddr(), "dc1", "dc2")

	// detect runs write and waits for an event naming service in dc.
	detect := func(t *testing.T, dc, service string, write func()) Event {
		t.Helper()
		m := log.mark()
		start := time.Now()
		write()
		e, at := log.wait(t, m, 10*time.Second, dc+"/"+service, names(dc, service))
		if lat := at.Sub(start); lat > detectWithin {
			t.Errorf("%s/%s seen %s after the write started, want within %s", dc, service, lat, detectWithin)
		} else {
			t.Logf("%s/%s seen %s after the write started", dc, service, lat)
		}
		return e
	}

	t.Run("register", func(t *testing.T) {
		detect(t, "dc1", "cache", func() {
			dc1.Register(t, harness.Instance{Node: "host-3", Address: "10.0.0.3", Service: "cache", ID: "cache-1", Port: 6379})
		})
		harness.Eventually(t, 5*time.Second, func() error {
			if n, known := d.Usable("dc1", "cache"); n != 1 || !known {
				return fmt.Errorf("Usable(dc1, cache) = %d, %t", n, known)
			}
			return nil
		})
	})
	t.Run("check critical", func(t *testing.T) {
		detect(t, "dc1", "web", func() { dc1.SetStatus(t, "host-1", "web-1", api.HealthCritical) })
		if n, known := d.Usable("dc1", "web"); n != 0 || !known {
			t.Errorf("Usable(dc1, web) after critical = %d, %t; want 0, true", n, known)
		}
	})
	t.Run("deregister", func(t *testing.T) {
		detect(t, "dc1", "cache", func() { dc1.Deregister(t, "host-3", "cache-1") })
	})
	t.Run("second DC", func(t *testing.T) {
		e := detect(t, "dc2", "billing", func() {
			dc2.Register(t, harness.Instance{Node: "host-9", Address: "10.1.0.9", Service: "billing", ID: "billing-1", Port: 90})
		})
		if e.DC != "dc2" {
			t.Errorf("event DC = %s", e.DC)
		}
	})
	t.Run("tag change", func(t *testing.T) {
		detect(t, "dc1", "api", func() {
			dc1.Register(t, harness.Instance{Node: "host-2", Address: "10.0.0.2", Service: "api", ID: "api-1", Port: 81, Tags: []string{"canary"}})
		})
	})
	t.Run("blind spots: port-only re-registration and output-only check change", func(t *testing.T) {
		// Both wake a loop (web's check is critical, so its output is in
		// the critical list); neither changes what the lists hold, so
		// neither is an event: the scheduled full reconcile catches the
		// port change.
		catalogUnchanged := func() float64 {
			return testutil.ToFloat64(d.m.wakeups.WithLabelValues("dc1", loopCatalog, wakeUnchanged))
		}
		criticalUnchanged := func() float64 {
			return testutil.ToFloat64(d.m.wakeups.WithLabelValues("dc1", loopCritical, wakeUnchanged))
		}
		c0, h0 := catalogUnchanged(), criticalUnchanged()
		m := log.mark()
		dc1.Register(t, harness.Instance{Node: "host-2", Address: "10.0.0.2", Service: "api", ID: "api-1", Port: 8181, Tags: []string{"canary"}})
		setOutput(t, dc1.Client(t), "host-1", "web-1", api.HealthCritical, "connection refused (again)")
		harness.Eventually(t, 5*time.Second, func() error {
			if catalogUnchanged() <= c0 || criticalUnchanged() <= h0 {
				return fmt.Errorf("waiting for both loops to wake on unchanged content: catalog %g->%g, critical %g->%g", c0, catalogUnchanged(), h0, criticalUnchanged())
			}
			return nil
		})
		t.Logf("both loops woke on unchanged content: catalog %g->%g, critical %g->%g", c0, catalogUnchanged(), h0, criticalUnchanged())
		// A real change afterwards: the next dc1 event names it alone.
		dc1.SetStatus(t, "host-2", "api-1", api.HealthWarning)
		log.wait(t, m, 10*time.Second, "dc1/api warning", names("dc1", "api"))
		for _, e := range log.since(m) {
			if e.DC == "dc1" && (slices.Contains(e.Services, "web") || e.Resync) {
				t.Errorf("unexpected event %+v", e)
			}
		}
	})
	t.Run("a burst of 100 changes gives a handful of wake-ups", func(t *testing.T) {
		// web is critical now; the burst ends with it passing.
		before, _ := loopStatus(d, "dc1", loopCritical)
		m := log.mark()
		start := time.Now()
		for i := range 100 {
			dc1.SetStatus(t, "host-1", "web-1", []string{api.HealthWarning, api.HealthCritical}[i%2])
		}
		dc1.SetStatus(t, "host-1", "web-1", api.HealthPassing)
		burst := time.Since(start)
		_, qm, err := dc1.Client(t).Health().State(api.HealthAny, nil)
		if err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 10*time.Second, func() error {
			if s, _ := loopStatus(d, "dc1", loopCritical); s.Index < qm.LastIndex {
				return fmt.Errorf("the loop holds index %d, the burst ended at %d", s.Index, qm.LastIndex)
			}
			return nil
		})
		seen := time.Since(start)
		log.wait(t, m, 5*time.Second, "dc1/web", names("dc1", "web"))
		if n, known := d.Usable("dc1", "web"); n != 1 || !known {
			t.Errorf("Usable(dc1, web) after the burst = %d, %t; want 1, true", n, known)
		}
		after, _ := loopStatus(d, "dc1", loopCritical)
		wakes := after.WakeUps - before.WakeUps
		// The bucket allows Burst at once and Rate per second after that,
		// plus the answer in flight when the burst started.
		bound := uint64(DefaultBurst + DefaultRate*seen.Seconds() + 1)
		t.Logf("101 writes in %s, all seen after %s: %d wake-ups (bound %d), %d events", burst, seen, wakes, bound, len(log.since(m)))
		if wakes > bound || wakes > 40 {
			t.Errorf("%d wake-ups for 101 writes in %s, want at most %d", wakes, burst, bound)
		}
	})
}

// setOutput re-registers a check with a new output (and the given status).
func setOutput(t *testing.T, c *api.Client, node, serviceID, status, output string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), harness.CallTimeout)
	defer cancel()
	reg := &api.CatalogRegistration{Node: node, SkipNodeUpdate: true, Check: &api.AgentCheck{
		Node: node, CheckID: harness.CheckID(serviceID), Name: "Service check", Status: status, Output: output, ServiceID: serviceID,
	}}
	if _, err := c.Catalog().Register(reg, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("set output of %s/%s: %v", node, serviceID, err)
	}
}

func TestConsul_ServerRestartedEmpty(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul")
	}
	srv := harness.StartServer(t, "dc1")
	srv.Register(t, harness.Instance{Node: "host-1", Address: "10.0.0.1", Service: "web", ID: "web-1", Port: 80})
	d, log := startWatching(t, srv.HTTPAddr(), "dc1")

	m := log.mark()
	srv.Restart(t) // a new, empty server on the same address
	// After recovery: a Resync for whatever may have been missed, and web,
	// gone with the old server's data.
	log.wait(t, m, 30*time.Second, "resync after restart", resyncOf("dc1"))
	log.wait(t, m, 30*time.Second, "web gone", names("dc1", "web"))
	waitWatching(t, d, "dc1")
	// Watching resumed on the new server's indexes.
	m = log.mark()
	srv.Register(t, harness.Instance{Node: "host-2", Address: "10.0.0.2", Service: "api", ID: "api-1", Port: 81})
	log.wait(t, m, detectWithin, "api on the restarted server", names("dc1", "api"))
	var failures float64
	for _, loop := range allLoops {
		failures += testutil.ToFloat64(d.m.errors.WithLabelValues("dc1", loop, errOther)) + testutil.ToFloat64(d.m.wakeups.WithLabelValues("dc1", loop, wakeReset))
	}
	if failures == 0 {
		t.Error("the restart was neither an error nor a reset for any loop")
	}
}

// TestConsul_StatusListWakesOnlyForItsState checks the Consul behaviour the
// status loops rely on: a blocking /v1/health/state/critical read that is
// already waiting is not woken by a passing check's output update nor by a
// new registration (its watch covers only the critical part of the status
// index), and is woken by a change to a critical check. (A read sent after
// any check changed returns at once: its index is the whole table's.)
func TestConsul_StatusListWakesOnlyForItsState(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Consul")
	}
	srv := harness.StartServer(t, "dc1")
	srv.Register(t, harness.Instance{Node: "host-1", Address: "10.0.0.1", Service: "web", ID: "web-1", Port: 80})
	srv.Register(t, harness.Instance{Node: "host-2", Address: "10.0.0.2", Service: "api", ID: "api-1", Port: 81, Status: api.HealthCritical})
	proxy := harness.NewProxy(t, srv.HTTPAddr())
	client, _ := publicClient(t, proxy.Addr())
	src, writer := NewConsulSource(client, true), srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The blocking read may reach the server after the first write (the
	// proxy has seen it, the server not yet): a few attempts, one clean
	// one proves the point; if Consul woke on passing writes, none is.
	var woke, quiet uint64
	for attempt := range 5 {
		_, m, err := src.Checks(ctx, stateCritical, Query{DC: "dc1"})
		if err != nil {
			t.Fatal(err)
		}
		proxy.Reset()
		answer := make(chan Meta, 1)
		go func() {
			_, m, _ := src.Checks(ctx, stateCritical, Query{DC: "dc1", Index: m.Index, Wait: 30 * time.Second})
			answer <- m
		}()
		harness.Eventually(t, 10*time.Second, func() error {
			if proxy.Count(nil) == 0 {
				return fmt.Errorf("blocking read not sent yet")
			}
			return nil
		})
		setOutput(t, writer, "host-1", "web-1", api.HealthPassing, fmt.Sprintf("200 OK, uptime %d", attempt))
		srv.Register(t, harness.Instance{Node: "host-3", Address: "10.0.0.3", Service: "web", ID: fmt.Sprintf("web-new-%d", attempt), Port: 80})
		_, q, err := src.Checks(ctx, stateAny, Query{DC: "dc1"})
		if err != nil {
			t.Fatal(err)
		}
		setOutput(t, writer, "host-2", "api-1", api.HealthCritical, fmt.Sprintf("connection refused %d", attempt))
		woke, quiet = (<-answer).Index, q.Index
		if woke > quiet {
			t.Logf("attempt %d: woke at index %d, after the passing writes (up to %d)", attempt+1, woke, quiet)
			return
		}
	}
	t.Errorf("the critical list woke at index %d, before the critical check's change (passing writes went up to %d)", woke, quiet)
}
