package watch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testWait bounds every wait for something the detector must do on its
// own; it is a failure bound, not a delay: waits end as soon as the thing
// happens.
const testWait = 5 * time.Second

// fakeSource is a scripted public cluster: every list request is handed to
// the test (fakeSource.next), which answers it. A request nobody answers
// blocks until its context ends, as a blocking query with no change does.
type fakeSource struct {
	mu    sync.Mutex
	dcs   []string
	dcErr error
	calls map[string]chan *fakeCall // by dc + "/" + loop
}

type fakeCall struct {
	q     Query
	ctx   context.Context
	reply chan fakeReply
}

type fakeReply struct {
	checks   []Check
	services map[string][]string
	index    uint64
	err      error
}

func newFakeSource(dcs ...string) *fakeSource {
	return &fakeSource{dcs: dcs, calls: map[string]chan *fakeCall{}}
}

func (f *fakeSource) setDCs(err error, dcs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dcs, f.dcErr = dcs, err
}

func (f *fakeSource) ch(dc, loop string) chan *fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := dc + "/" + loop
	c, ok := f.calls[k]
	if !ok {
		c = make(chan *fakeCall)
		f.calls[k] = c
	}
	return c
}

func (f *fakeSource) Datacenters(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dcs...), f.dcErr
}

func (f *fakeSource) call(ctx context.Context, loop string, q Query) (fakeReply, error) {
	c := &fakeCall{q: q, ctx: ctx, reply: make(chan fakeReply, 1)}
	select {
	case f.ch(q.DC, loop) <- c:
	case <-ctx.Done():
		return fakeReply{}, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r, r.err
	case <-ctx.Done():
		return fakeReply{}, ctx.Err()
	}
}

// Checks hands the request to the test under the loop name of its state
// ("critical", "warning"; "any" for the catalog loop's instance list).
func (f *fakeSource) Checks(ctx context.Context, state string, q Query) ([]Check, Meta, error) {
	r, err := f.call(ctx, state, q)
	// A copy: the detector sorts what it gets in place.
	return append([]Check(nil), r.checks...), Meta{Index: r.index, WireBytes: 10, DecodedBytes: 100}, err
}

func (f *fakeSource) CatalogServices(ctx context.Context, q Query) (map[string][]string, Meta, error) {
	r, err := f.call(ctx, loopCatalog, q)
	return r.services, Meta{Index: r.index}, err
}

// next returns the next request of a loop, failing the test if none comes.
func (f *fakeSource) next(t *testing.T, dc, loop string) *fakeCall {
	t.Helper()
	select {
	case c := <-f.ch(dc, loop):
		return c
	case <-time.After(testWait):
		t.Fatalf("no %s request for %s within %s", loop, dc, testWait)
		return nil
	}
}

func (c *fakeCall) answer(r fakeReply) { c.reply <- r }

var errFake = errors.New("fake: connection refused")

// sinkRec collects events.
type sinkRec struct{ ch chan Event }

func newSink() *sinkRec { return &sinkRec{ch: make(chan Event, 1000)} }

func (s *sinkRec) sink(e Event) { s.ch <- e }

func (s *sinkRec) next(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-s.ch:
		return e
	case <-time.After(testWait):
		t.Fatalf("no event within %s", testWait)
		return Event{}
	}
}

// fastOptions keep backoffs short and the bucket out of the way.
func fastOptions(reg prometheus.Registerer) Options {
	return Options{
		Wait: time.Minute, Rate: 1000, Burst: 1000,
		BackoffMin: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		CallTimeout: testWait, DCRefresh: time.Hour, Registerer: reg,
	}
}

// startDetector runs a detector on src until the test ends.
func startDetector(t *testing.T, src Source, opts Options, sink func(Event)) *Detector {
	t.Helper()
	d, err := New(src, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	startDetectorOn(t, d, sink)
	return d
}

// startDetectorOn runs d until the test ends.
func startDetectorOn(t *testing.T, d *Detector, sink func(Event)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testWait):
			t.Errorf("Run did not return within %s of cancellation", testWait)
		}
	})
}

// chk builds a service check; node checks have no service.
func chk(node, id, status, service string) Check {
	c := Check{Node: node, CheckID: id, Status: status}
	if service != "" {
		c.ServiceID, c.ServiceName = service+"-"+node, service
	}
	return c
}
