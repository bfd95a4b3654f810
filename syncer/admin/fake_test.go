package admin_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
	"github.com/gwsync/gwsync/syncer/watch"
)

// fakeController is the admin server's view of a controller, for fast
// tests of the HTTP behaviour. Sync records every request and answers
// through syncFn (default: a complete, empty result).
type fakeController struct {
	gateways []string
	syncFn   func(ctx context.Context, req syncer.Request) (syncer.Result, error)
	// owned, if set, says which gateways this replica writes.
	owned  func(gateway string) bool
	health []syncer.DCHealth

	mu    sync.Mutex
	calls []syncer.Request
}

func newFake(gateways ...string) *fakeController {
	return &fakeController{gateways: gateways}
}

func (f *fakeController) Gateways() []string { return append([]string(nil), f.gateways...) }

func (f *fakeController) Sync(ctx context.Context, req syncer.Request) (syncer.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	fn := f.syncFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, req)
	}
	return syncer.Result{Gateway: req.Gateway, Services: req.Services, DryRun: req.DryRun, Complete: true,
		Started: time.Now(), Finished: time.Now()}, nil
}

func (f *fakeController) Status() syncer.Status {
	st := syncer.Status{Datacenters: f.health}
	for _, g := range f.gateways {
		owned := f.owned == nil || f.owned(g)
		st.Gateways = append(st.Gateways, syncer.GatewayStatus{Name: g, SourceDatacenter: "dc1", Synced: owned, Owned: owned})
	}
	return st
}

func (f *fakeController) Ready() bool { return true }

// syncs returns the requests Sync has seen.
func (f *fakeController) syncs() []syncer.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]syncer.Request(nil), f.calls...)
}

// fakeReplicas is a controller whose replicas share the gateways: owners
// maps a gateway to the replica that holds it (absent: nobody does).
type fakeReplicas struct {
	*fakeController
	replica string
	owners  map[string]admin.Owner
}

var _ admin.Ownership = (*fakeReplicas)(nil)

func newReplicas(replica string, owners map[string]admin.Owner, gateways ...string) *fakeReplicas {
	f := &fakeReplicas{fakeController: newFake(gateways...), replica: replica, owners: owners}
	f.owned = func(g string) bool { return owners[g].Replica == replica }
	return f
}

func (f *fakeReplicas) Replica() string { return f.replica }

func (f *fakeReplicas) Owner(gateway string) (string, string, bool) {
	o := f.owners[gateway]
	return o.Replica, o.Address, o.Replica == f.replica
}

// fakeEvents is a controller that runs the event path.
type fakeEvents struct {
	*fakeController
	loops []watch.LoopStatus
}

func (f *fakeEvents) EventStatus() []watch.LoopStatus { return f.loops }

// logBuffer collects a logger's output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: w})
}

// fakeServer runs an admin server for ctrl on a loopback port and returns
// its base URL ("http://127.0.0.1:port").
func fakeServer(t *testing.T, ctrl admin.Controller, adjust func(*admin.Options)) string {
	t.Helper()
	opts := admin.Options{Controller: ctrl, Address: "127.0.0.1:0",
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})}
	if adjust != nil {
		adjust(&opts)
	}
	return "http://" + admintest.RunServer(t, admin.New(opts))
}

// request is one HTTP request of a test, with its headers.
type request struct {
	method, path, body string
	header             map[string]string
	host               string
}

// send makes the request and returns the answer's status, headers and body.
func send(t *testing.T, base string, r request) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// jsonHeader is the header of a well-formed mutating request.
var jsonHeader = map[string]string{"Content-Type": "application/json"}
