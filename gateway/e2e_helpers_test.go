package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/gateway/refgw"
	"github.com/gwsync/gwsync/test/harness"
)

const (
	gatewayName = "edge"
	sourceDC    = "dc1"
	nodePrefix  = "gwsync-"
	queryPrefix = "gwsync-"
	callTimeout = 10 * time.Second
)

// env is a public cluster (one DC with the gwsync template query), a
// dedicated cluster filled the way the syncer fills it, and real HTTP
// backends the instances point at.
type env struct {
	public, local *harness.Server
	publicAddr    string // what resolvers dial: the server or a proxy
	localAddr     string
	mw            *mirrorWriter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real Consul servers")
	}
	var public, local *harness.Server
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); public = harness.StartServer(t, sourceDC) }()
	go func() { defer wg.Done(); local = harness.StartServer(t, "gw1") }()
	wg.Wait()
	if public == nil || local == nil {
		t.FailNow()
	}
	e := &env{public: public, local: local, publicAddr: public.HTTPAddr(), localAddr: local.HTTPAddr(), mw: newMirrorWriter(local.Client(t))}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, _, err := public.Client(t).PreparedQuery().Create(&api.PreparedQueryDefinition{
		Name:     queryPrefix,
		Template: api.QueryTemplate{Type: "name_prefix_match"},
		Service:  api.ServiceQuery{Service: "${name.suffix}", OnlyPassing: true},
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("create template query: %v", err)
	}
	return e
}

// backend is a real HTTP server that says who it is.
func backend(t *testing.T, name string) (port int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend=%s path=%s", name, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	_, p, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

type inst struct {
	node, service string
	port          int
	tags          []string
}

func (i inst) id() string { return i.service + "-" + i.node }

// addPublic registers instances in the public cluster.
func (e *env) addPublic(t *testing.T, insts ...inst) {
	t.Helper()
	for _, in := range insts {
		e.public.Register(t, harness.Instance{Node: in.node, Address: "127.0.0.1", ID: in.id(), Service: in.service, Port: in.port, Tags: in.tags})
	}
}

// mirror writes instances into the dedicated cluster as the controller
// does: their services' instances become exactly these, the services are
// covered, and the marker says the mirror is complete.
func (e *env) mirror(t *testing.T, insts ...inst) {
	t.Helper()
	set := byService(insts...)
	e.mw.write(t, set, sortedKeys(set), nil, true)
}

// unmirror removes instances from the mirror; their services stay covered
// (the mirror is authoritative: they have fewer instances, maybe none).
func (e *env) unmirror(t *testing.T, insts ...inst) {
	t.Helper()
	gone := map[string]bool{}
	for _, in := range insts {
		gone[in.id()] = true
	}
	set := map[string][]inst{}
	e.mw.mu.Lock()
	for svc := range byService(insts...) {
		set[svc] = []inst{}
		for id, in := range e.mw.held[svc] {
			if !gone[id] {
				set[svc] = append(set[svc], in)
			}
		}
	}
	e.mw.mu.Unlock()
	e.mw.write(t, set, nil, nil, true)
}

// restartLocal restarts the dedicated cluster empty, as a dev server comes
// back; the writer forgets what it wrote.
func (e *env) restartLocal(t *testing.T) {
	t.Helper()
	e.local.Restart(t)
	e.mw.reset()
}

// options are fast test timings; every cluster client comes from config.
func (e *env) options(t *testing.T, logOut io.Writer) gateway.Options {
	t.Helper()
	local, err := config.Cluster{Address: e.localAddr}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	public, err := config.Cluster{Address: e.publicAddr}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if logOut == nil {
		logOut = newTestLog(t)
	}
	return gateway.Options{
		Local: local, Public: public, SourceDatacenter: sourceDC, QueryPrefix: queryPrefix,
		Gateway: gatewayName, MaxMarkerAge: time.Minute,
		LocalBreaker:  gateway.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Second},
		PublicBreaker: gateway.BreakerSettings{ConsecutiveFailures: 3, OpenTimeout: time.Second},
		BlockingWait:  5 * time.Second, LookupTimeout: time.Second, PublicTimeout: 2 * time.Second,
		PublicPollInterval: 500 * time.Millisecond, ProbeInterval: 200 * time.Millisecond,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond,
		SnapshotInterval: 200 * time.Millisecond,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: logOut}),
		Registerer:       prometheus.NewRegistry(),
	}
}

// start builds and runs a resolver; it is stopped (and its final snapshot
// written) when the returned stop is called or the test ends.
func start(t *testing.T, opts gateway.Options) (r *gateway.Resolver, stop func()) {
	t.Helper()
	r, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return r, stop
}

// serveGateway puts the reference gateway in front of r.
func serveGateway(t *testing.T, r refgw.Resolver) string {
	t.Helper()
	srv := httptest.NewServer(refgw.New(r, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// traffic sends requests through the gateway until stopped and counts
// failures (anything but 200) and answers per source.
type traffic struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	sources       map[string]int
	last          string
	firstFailure  string
	stop          chan struct{}
	done          chan struct{}
}

func startTraffic(t *testing.T, url string) *traffic {
	t.Helper()
	tr := &traffic{sources: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			status, src, body := get(client, url)
			tr.total.Add(1)
			tr.mu.Lock()
			tr.sources[src]++
			tr.last = src
			if status != http.StatusOK {
				tr.failed.Add(1)
				if tr.firstFailure == "" {
					tr.firstFailure = fmt.Sprintf("status %d source %s: %s", status, src, body)
				}
			}
			tr.mu.Unlock()
		}
	}()
	t.Cleanup(tr.finish)
	return tr
}

func (tr *traffic) finish() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

func (tr *traffic) lastSource() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.last
}

// waitRequests waits until n more requests completed.
func (tr *traffic) waitRequests(t *testing.T, n int64) {
	t.Helper()
	target := tr.total.Load() + n
	harness.Eventually(t, 30*time.Second, func() error {
		if got := tr.total.Load(); got < target {
			return fmt.Errorf("%d requests, waiting for %d", got, target)
		}
		return nil
	})
}

func (tr *traffic) requireNoFailures(t *testing.T) {
	t.Helper()
	tr.finish()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t.Logf("traffic: %d requests, %d failed, by source %v", tr.total.Load(), tr.failed.Load(), tr.sources)
	if tr.failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %s", tr.failed.Load(), tr.total.Load(), tr.firstFailure)
	}
}

func get(client *http.Client, url string) (status int, source, body string) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(refgw.SourceHeader), string(b)
}

// waitSource waits until a request through the gateway is answered from src.
func waitSource(t *testing.T, url, src string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	harness.Eventually(t, timeout, func() error {
		status, got, body := get(client, url)
		if status != http.StatusOK || got != src {
			return fmt.Errorf("status %d source %q (want 200 from %s): %s", status, got, src, body)
		}
		return nil
	})
}

// testLog sends resolver logs to t.Log until the test ends, and keeps them
// for assertions.
type testLog struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
	buf  strings.Builder
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{t: t}
	t.Cleanup(func() { l.mu.Lock(); l.done = true; l.mu.Unlock() })
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
