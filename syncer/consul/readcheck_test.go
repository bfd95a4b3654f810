package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gwsync/gwsync/config"
)

const (
	ctrlToken = "ctrl-secret-4f1d9a"
	readToken = "read-secret-8b2c7e"
)

// fakeAnswer is how the fake answers one token's service list in one DC.
type fakeAnswer struct {
	services []string
	filtered bool
	code     int  // not 0: this status, Consul's 403 body
	hang     bool // no answer until the caller gives up
}

// fakeCatalog is a Consul HTTP API with just /v1/catalog/datacenters and
// /v1/catalog/services, answering per token and DC.
type fakeCatalog struct {
	mu       sync.Mutex
	dcs      []string
	dcsCode  int
	answers  map[string]map[string]fakeAnswer // token -> dc -> answer
	requests []string                         // "token dc", services lists only
	notStale int                              // service lists asked without ?stale
	lists    chan struct{}                    // one per datacenter list
	hung     chan struct{}                    // one per request left hanging
}

func newFakeCatalog(t *testing.T) (*fakeCatalog, string) {
	f := &fakeCatalog{dcs: []string{"dc1", "dc2"}, answers: map[string]map[string]fakeAnswer{ctrlToken: {}, readToken: {}},
		lists: make(chan struct{}, 100), hung: make(chan struct{}, 100)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeCatalog) set(token, dc string, a fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[token][dc] = a
}

func (f *fakeCatalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	token, dc := r.Header.Get("X-Consul-Token"), r.URL.Query().Get("dc")
	var a fakeAnswer
	var body any
	switch r.URL.Path {
	case "/v1/catalog/datacenters":
		a.code, body = f.dcsCode, f.dcs
		select {
		case f.lists <- struct{}{}:
		default:
		}
	case "/v1/catalog/services":
		// Consul marks a list its ACLs cut even when ?filter then
		// leaves nothing (the check's steady request).
		filter := r.URL.Query().Get("filter")
		f.requests = append(f.requests, fmt.Sprintf("%s %s %t", token, dc, filter == ""))
		if !r.URL.Query().Has("stale") {
			f.notStale++
		}
		a = f.answers[token][dc]
		m := map[string][]string{}
		for _, s := range a.services {
			if filter == "" {
				m[s] = []string{}
			}
		}
		body = m
	default:
		a.code = http.StatusNotFound
	}
	f.mu.Unlock()
	switch {
	case a.hang:
		f.hung <- struct{}{}
		<-r.Context().Done()
		return
	case a.code == http.StatusForbidden:
		http.Error(w, "ACL not found", a.code)
		return
	case a.code != 0:
		http.Error(w, "fake failure", a.code)
		return
	}
	// What real Consul sends: the API client parses the filtered mark
	// only after X-Consul-LastContact.
	w.Header().Set("X-Consul-Index", "7")
	w.Header().Set("X-Consul-LastContact", "0")
	w.Header().Set("X-Consul-KnownLeader", "true")
	if a.filtered {
		w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
	}
	_ = json.NewEncoder(w).Encode(body)
}

// count is how many service lists token asked of dc: whole (full) or
// with a filter.
func (f *fakeCatalog) count(token, dc string, full bool) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == fmt.Sprintf("%s %s %t", token, dc, full) {
			n++
		}
	}
	return n
}

// logBuf collects every log line, at every level.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of subs.
func (l *logBuf) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// newTestCheck builds a check against the fake with both tokens; the log
// is checked for the tokens when the test ends.
func newTestCheck(t *testing.T, addr string, timeout time.Duration) (*ReadCheck, *logBuf, *prometheus.Registry) {
	t.Helper()
	logs, reg := &logBuf{}, prometheus.NewRegistry()
	cfg := &config.Config{Public: config.Public{Cluster: config.Cluster{Address: addr, Scheme: "http", Token: ctrlToken, Timeout: timeout}, ReadToken: readToken}}
	r, err := NewReadCheck(cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs}), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tok := range []string{ctrlToken, readToken} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a token is in the log:\n%s", logs)
			}
		}
	})
	return r, logs, reg
}

func check(t *testing.T, r *ReadCheck) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Check(ctx)
}

// gauge is dc's read-token gauge, -1 if it has no series.
func gauge(r *ReadCheck, dc string) float64 { return value(r.filtered, dc) }

// errCount is dc's error counter, -1 if it has no series.
func errCount(r *ReadCheck, dc string) float64 { return value(r.errs, dc) }

// value reads the sample of c labelled dc without creating it.
func value(c prometheus.Collector, dc string) float64 {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			return -2
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "dc" && l.GetValue() == dc {
				return pb.GetGauge().GetValue() + pb.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// services returns the given names plus hidden-00 .. hidden-(n-1).
func services(n int, names ...string) []string {
	for i := range n {
		names = append(names, fmt.Sprintf("hidden-%02d", i))
	}
	return names
}

// A filtered answer sets the DC's gauge and logs once, with the number of
// services the controller sees and the read token does not and the first
// ten names; the log comes again only when that changes, and an info line
// when it clears. The comparison costs a second request only while
// filtered.
func TestReadCheck_Filtered(t *testing.T) {
	f, addr := newFakeCatalog(t)
	f.set(readToken, "dc1", fakeAnswer{services: []string{"consul", "web"}, filtered: true})
	f.set(ctrlToken, "dc1", fakeAnswer{services: services(12, "consul", "web")})
	f.set(readToken, "dc2", fakeAnswer{services: []string{"consul", "web"}})
	f.set(ctrlToken, "dc2", fakeAnswer{services: []string{"consul", "web"}})
	r, logs, _ := newTestCheck(t, addr, 2*time.Second)
	if n := testutil.CollectAndCount(r.filtered); n != 0 {
		t.Fatalf("%d gauge series before any check, want none", n)
	}
	for range 3 {
		if err := check(t, r); err != nil {
			t.Fatal(err)
		}
	}
	if g1, g2 := gauge(r, "dc1"), gauge(r, "dc2"); g1 != 1 || g2 != 0 {
		t.Fatalf("gauge dc1 %v, dc2 %v; want 1, 0", g1, g2)
	}
	warn := logs.lines("[WARN]", "filtered by ACLs")
	if len(warn) != 1 {
		t.Fatalf("%d warnings in 3 checks, want 1:\n%s", len(warn), logs)
	}
	for _, want := range []string{"dc=dc1", "hidden=12", "hidden-00", "hidden-09", "(2 more)", "gateways resolving these services from the public cluster get no instances"} {
		if !strings.Contains(warn[0], want) {
			t.Errorf("warning without %q: %s", want, warn[0])
		}
	}
	if strings.Contains(warn[0], "hidden-10") || strings.Contains(warn[0], "web") {
		t.Errorf("warning lists more than ten names, or one the read token sees: %s", warn[0])
	}
	// dc2 (not filtered) cost one filtered request per check; dc1 three.
	if c, w, m := f.count(ctrlToken, "dc2", true), f.count(readToken, "dc2", true), f.count(readToken, "dc2", false); c != 0 || w != 0 || m != 3 || f.notStale != 0 {
		t.Fatalf("dc2's whole list asked %d times with the controller's token and %d with the read token, %d filtered requests (want 0, 0, 3); %d lists not stale", c, w, m, f.notStale)
	}
	if c, w, m := f.count(ctrlToken, "dc1", true), f.count(readToken, "dc1", true), f.count(readToken, "dc1", false); c != 3 || w != 3 || m != 3 {
		t.Fatalf("dc1's whole list asked %d times with the controller's token and %d with the read token, %d filtered requests (want 3 each)", c, w, m)
	}

	// Another service hidden: logged again, with the new count.
	f.set(ctrlToken, "dc1", fakeAnswer{services: services(13, "consul", "web")})
	_ = check(t, r)
	_ = check(t, r)
	if warn := logs.lines("[WARN]", "filtered by ACLs"); len(warn) != 2 || !strings.Contains(warn[1], "hidden=13") {
		t.Fatalf("want a second warning with hidden=13:\n%s", logs)
	}

	// The policy fixed: 0 and one info line.
	f.set(readToken, "dc1", fakeAnswer{services: services(13, "consul", "web")})
	_ = check(t, r)
	_ = check(t, r)
	if gauge(r, "dc1") != 0 {
		t.Fatal("gauge dc1 not 0 after an unfiltered answer")
	}
	if info := logs.lines("[INFO]", "sees every service again", "dc=dc1"); len(info) != 1 {
		t.Fatalf("%d info lines for the clear, want 1:\n%s", len(info), logs)
	}
	if errCount(r, "dc1") != 0 || errCount(r, "dc2") != 0 || errCount(r, agentDC) != 0 {
		t.Fatal("errors counted for answered checks")
	}
}

// A filtered answer the controller's own list cannot explain still sets
// the gauge; the warning says the hidden services are unknown, and names
// them once the comparison works.
func TestReadCheck_CompareFails(t *testing.T) {
	f, addr := newFakeCatalog(t)
	f.set(readToken, "dc1", fakeAnswer{services: []string{"web"}, filtered: true})
	f.set(ctrlToken, "dc1", fakeAnswer{code: http.StatusInternalServerError})
	f.set(readToken, "dc2", fakeAnswer{services: []string{"web"}})
	r, logs, _ := newTestCheck(t, addr, 2*time.Second)
	if err := check(t, r); err != nil {
		t.Fatalf("a failed comparison failed the check: %v", err)
	}
	if gauge(r, "dc1") != 1 || errCount(r, "dc1") != 0 {
		t.Fatalf("gauge %v, errors %v; want 1, 0", gauge(r, "dc1"), errCount(r, "dc1"))
	}
	if w := logs.lines("[WARN]", "filtered by ACLs", "hidden=unknown", "compare_error"); len(w) != 1 {
		t.Fatalf("want one warning with the hidden services unknown:\n%s", logs)
	}
	f.set(ctrlToken, "dc1", fakeAnswer{services: []string{"web", "pay"}})
	_ = check(t, r)
	_ = check(t, r)
	if w := logs.lines("[WARN]", "filtered by ACLs", "hidden=1", "services=pay"); len(w) != 1 {
		t.Fatalf("want one warning naming pay once the comparison works:\n%s", logs)
	}
}

// Failed checks: a 403 for the whole list, a timeout, a failed datacenter
// list. Each is counted (every time) and logged once per kind; the gauge
// keeps its last value, and has no series before a first answer.
func TestReadCheck_Failures(t *testing.T) {
	f, addr := newFakeCatalog(t)
	f.set(readToken, "dc1", fakeAnswer{services: []string{"web"}})
	f.set(readToken, "dc2", fakeAnswer{code: http.StatusForbidden})
	r, logs, _ := newTestCheck(t, addr, 200*time.Millisecond)

	for i := range 2 {
		err := check(t, r)
		if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "dc2") {
			t.Fatalf("check %d: %v; want dc2 refused", i, err)
		}
	}
	if errCount(r, "dc2") != 2 || errCount(r, "dc1") != 0 {
		t.Fatalf("errors dc1 %v, dc2 %v; want 0, 2", errCount(r, "dc1"), errCount(r, "dc2"))
	}
	if n := testutil.CollectAndCount(r.filtered); n != 1 || gauge(r, "dc1") != 0 || gauge(r, "dc2") != -1 {
		t.Fatalf("%d gauge series, dc1 %v, dc2 %v (want only dc1's, at 0)", n, gauge(r, "dc1"), gauge(r, "dc2"))
	}
	if w := logs.lines("[WARN]", "check failed", "dc=dc2", "ACL not found"); len(w) != 1 {
		t.Fatalf("want one warning for two refusals:\n%s", logs)
	}

	// dc2 answers, then dc1 stops answering in time: dc1's gauge stays.
	f.set(readToken, "dc2", fakeAnswer{services: []string{"web"}})
	f.set(readToken, "dc1", fakeAnswer{hang: true})
	err := check(t, r)
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("check: %v; want dc1 timed out", err)
	}
	if errCount(r, "dc1") != 1 || gauge(r, "dc1") != 0 || gauge(r, "dc2") != 0 {
		t.Fatalf("errors dc1 %v, gauge dc1 %v dc2 %v; want 1, 0, 0", errCount(r, "dc1"), gauge(r, "dc1"), gauge(r, "dc2"))
	}
	if len(logs.lines("[INFO]", "answered again", "dc=dc2")) != 1 || len(logs.lines("[WARN]", "check failed", "dc=dc1", "no answer within")) != 1 {
		t.Fatalf("want dc2's recovery and dc1's timeout logged:\n%s", logs)
	}

	// The datacenter list fails: counted under dc="_agent".
	f.mu.Lock()
	f.dcsCode = http.StatusInternalServerError
	f.mu.Unlock()
	if err := check(t, r); err == nil || errCount(r, agentDC) != 1 {
		t.Fatalf("check: %v, errors %v; want the datacenter list failed and counted", err, errCount(r, agentDC))
	}

	// Everything answers again; then a shutdown in the middle of a check
	// says nothing of the cluster.
	f.mu.Lock()
	f.dcsCode = 0
	f.mu.Unlock()
	f.set(readToken, "dc1", fakeAnswer{services: []string{"web"}})
	if err := check(t, r); err != nil || len(logs.lines("[INFO]", "answered again", "dc="+agentDC)) != 1 {
		t.Fatalf("check: %v; want the datacenter list's recovery logged:\n%s", err, logs)
	}
	<-f.hung // the timed-out request's
	f.set(readToken, "dc1", fakeAnswer{hang: true})
	r.timeout = time.Minute // only the cancel ends the call
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-f.hung // this check's request has arrived
		cancel()
	}()
	before := logs.String()
	if err := r.Check(ctx); err == nil {
		t.Fatal("a cancelled check returned no error")
	}
	if errCount(r, "dc1") != 1 || logs.String() != before {
		t.Fatalf("a cancelled check was counted (%v) or logged:\n%s", errCount(r, "dc1"), strings.TrimPrefix(logs.String(), before))
	}
}

// A DC that leaves the federation loses its series.
func TestReadCheck_ForgetsDC(t *testing.T) {
	f, addr := newFakeCatalog(t)
	f.set(readToken, "dc1", fakeAnswer{services: []string{"web"}})
	f.set(readToken, "dc2", fakeAnswer{services: []string{"web"}, filtered: true})
	r, _, _ := newTestCheck(t, addr, 2*time.Second)
	_ = check(t, r)
	f.mu.Lock()
	f.dcs = []string{"dc1"}
	f.mu.Unlock()
	_ = check(t, r)
	if n, e := testutil.CollectAndCount(r.filtered), testutil.CollectAndCount(r.errs); n != 1 || e != 2 {
		t.Fatalf("%d gauge and %d counter series after dc2 left, want 1 (dc1) and 2 (dc1, _agent)", n, e)
	}
}

// Run checks at start and every interval, and returns when ctx ends.
func TestReadCheck_Run(t *testing.T) {
	f, addr := newFakeCatalog(t)
	f.set(readToken, "dc1", fakeAnswer{services: []string{"web"}})
	f.set(readToken, "dc2", fakeAnswer{services: []string{"web"}})
	r, _, _ := newTestCheck(t, addr, 2*time.Second)
	r.interval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i := range 3 {
		select {
		case <-f.lists:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d checks in 10s with a 5ms interval", i)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// Without a read token nothing is registered, asked or logged.
func TestReadCheck_NoReadToken(t *testing.T) {
	f, addr := newFakeCatalog(t)
	logs, reg := &logBuf{}, prometheus.NewRegistry()
	cfg := &config.Config{Public: config.Public{Cluster: config.Cluster{Address: addr, Scheme: "http", Token: ctrlToken, Timeout: time.Second}}}
	r, err := NewReadCheck(cfg, hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs}), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Run(ctx); err != nil { // returns at once: ctx is still live
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 || len(f.lists) != 0 || logs.String() != "" {
		t.Fatalf("without a read token: %d families (%v), %d requests, log %q", len(mfs), err, len(f.lists), logs)
	}
}

// A configuration built by hand without a timeout is refused, not run
// without deadlines.
func TestNewReadCheck_NoTimeout(t *testing.T) {
	cfg := &config.Config{Public: config.Public{Cluster: config.Cluster{Address: "127.0.0.1:1", Token: ctrlToken}, ReadToken: readToken}}
	_, err := NewReadCheck(cfg, nil, prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "public.timeout") || strings.Contains(err.Error(), readToken) {
		t.Fatalf("NewReadCheck without a timeout: %v; want an error naming public.timeout", err)
	}
}
