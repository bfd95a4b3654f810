package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// sampleInterval is how often the sampler reads a dedicated cluster. Each
// sample is two requests (the marker, then every node with its services);
// 100 ms catches a mirror that is half written (the fault tests make that
// state last over a second) without loading two shared cores with the
// decoding of a 1,000-instance dump.
const sampleInterval = 100 * time.Millisecond

// sampleTimeout bounds one sample's reads: a restarting cluster refuses
// connections at once, a hung one must not stall the sampler.
const sampleTimeout = 2 * time.Second

// mirrorSample is one reading of a gateway's mirror.
type mirrorSample struct {
	At time.Time
	// Err is set when the cluster could not be read (down, restarting).
	Err error
	// Marker is the gateway's sync marker, read before the instances (so
	// a marker seen here was written before the instances counted).
	Marker *mirror.Marker
	// Instances counts the gateway's mirrored instances of the test's
	// services; Ports counts them by port.
	Instances int
	Ports     map[int]int
	// Dups counts instances and source nodes found more than once (the
	// same source DC, node and service ID under two mirrored nodes).
	Dups int
	// Lost counts the instances of the previous readable sample that this
	// one no longer holds.
	Lost int
	keys map[string]bool // "dc/node/id" of every instance counted
}

// lostKey is an instance present in one sample and gone in the next.
type lostKey struct {
	At  time.Time
	Key string
}

// mirrorSampler polls one gateway's mirror in a dedicated cluster at
// sampleInterval until stopped, keeping every sample and every instance
// that disappeared between two readable samples.
type mirrorSampler struct {
	client  *api.Client
	gateway string
	match   func(service string) bool

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	samples []mirrorSample
	last    *mirrorSample // last readable sample
	lost    []lostKey     // the first maxLostKept instances that disappeared
}

// maxLostKept bounds the disappeared instances the sampler names (each
// sample counts all of them).
const maxLostKept = 20

// startSampler starts sampling the mirror of gateway in srv, counting the
// instances of services match accepts. It stops through t.Cleanup if the
// test does not stop it first.
func startSampler(t *testing.T, srv *harness.Server, gateway string, match func(string) bool) *mirrorSampler {
	t.Helper()
	s := &mirrorSampler{client: srv.Client(t), gateway: gateway, match: match, stopCh: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	t.Cleanup(s.stop)
	return s
}

func (s *mirrorSampler) run() {
	defer close(s.done)
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	for {
		s.add(s.read())
		select {
		case <-s.stopCh:
			return
		case <-tick.C:
		}
	}
}

// stop ends sampling and waits for the sampler to finish; it may be
// called more than once.
func (s *mirrorSampler) stop() {
	s.stopOnce.Do(func() { close(s.stopCh) })
	<-s.done
}

// read takes one sample: the marker, then one dump of every node with its
// services (the UI's node dump: one request for the whole mirror, where
// the catalog API needs one per service).
func (s *mirrorSampler) read() mirrorSample {
	ctx, cancel := context.WithTimeout(context.Background(), sampleTimeout)
	defer cancel()
	out := mirrorSample{At: time.Now(), Ports: map[int]int{}, keys: map[string]bool{}}
	q := (&api.QueryOptions{}).WithContext(ctx)
	kv, _, err := s.client.KV().Get(mirror.MarkerKey(mirror.DefaultKVPrefix, s.gateway), q)
	if err != nil {
		out.Err = fmt.Errorf("read marker: %w", err)
		return out
	}
	if kv != nil {
		m, err := mirror.DecodeMarker(kv.Value)
		if err != nil {
			out.Err = err
			return out
		}
		out.Marker = &m
	}
	var nodes []struct {
		Node     string
		Meta     map[string]string
		Services []struct {
			ID, Service string
			Port        int
		}
	}
	if _, err := s.client.Raw().Query("/v1/internal/ui/nodes", &nodes, q); err != nil {
		out.Err = fmt.Errorf("read nodes: %w", err)
		return out
	}
	sources := map[string]bool{}
	for _, n := range nodes {
		if n.Meta[mirror.MetaManaged] != mirror.ManagedValue || n.Meta[mirror.MetaGateway] != s.gateway {
			continue
		}
		src := n.Meta[mirror.MetaSourceDC] + "/" + n.Meta[mirror.MetaSourceNode]
		if sources[src] {
			out.Dups++
		}
		sources[src] = true
		for _, svc := range n.Services {
			if !s.match(svc.Service) {
				continue
			}
			k := src + "/" + svc.ID
			if out.keys[k] {
				out.Dups++
			}
			out.keys[k] = true
			out.Instances++
			out.Ports[svc.Port]++
		}
	}
	return out
}

func (s *mirrorSampler) add(m mirrorSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Err == nil && s.last != nil {
		for k := range s.last.keys {
			if !m.keys[k] {
				m.Lost++
				if len(s.lost) < maxLostKept {
					s.lost = append(s.lost, lostKey{At: m.At, Key: k})
				}
			}
		}
	}
	kept := m
	kept.keys = nil // every sample is kept; only the last one's keys are needed
	s.samples = append(s.samples, kept)
	if m.Err == nil {
		s.last = &m
	}
}

// latest returns the last readable sample (false before the first one).
func (s *mirrorSampler) latest() (mirrorSample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return mirrorSample{}, false
	}
	return *s.last, true
}

// waitFor waits until the latest readable sample satisfies cond.
func (s *mirrorSampler) waitFor(t *testing.T, timeout time.Duration, cond func(mirrorSample) error) mirrorSample {
	t.Helper()
	var got mirrorSample
	harness.Eventually(t, timeout, func() error {
		m, ok := s.latest()
		if !ok {
			return fmt.Errorf("no readable sample yet")
		}
		got = m
		return cond(m)
	})
	return got
}

// window returns the samples taken in [from, to] (to zero: until now).
func (s *mirrorSampler) window(from, to time.Time) []mirrorSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mirrorSample
	for _, m := range s.samples {
		if !m.At.Before(from) && (to.IsZero() || !m.At.After(to)) {
			out = append(out, m)
		}
	}
	return out
}

// lostSince returns how many instances disappeared between two readable
// samples taken at or after from, and the first few of them.
func (s *mirrorSampler) lostSince(from time.Time) (int, []lostKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.samples {
		if !m.At.Before(from) {
			n += m.Lost
		}
	}
	var keys []lostKey
	for _, l := range s.lost {
		if !l.At.Before(from) {
			keys = append(keys, l)
		}
	}
	return n, keys
}

// faultSummary describes the samples of a fault window.
type faultSummary struct {
	Samples, Unreadable int
	Min, Max            int
	MaxDups             int
}

// summarize reports the readable samples' minimum and maximum instance
// counts in [from, to]; Min is -1 when none was readable.
func summarize(samples []mirrorSample) faultSummary {
	sum := faultSummary{Samples: len(samples), Min: -1}
	for _, m := range samples {
		if m.Err != nil {
			sum.Unreadable++
			continue
		}
		if sum.Min < 0 || m.Instances < sum.Min {
			sum.Min = m.Instances
		}
		sum.Max = max(sum.Max, m.Instances)
		sum.MaxDups = max(sum.MaxDups, m.Dups)
	}
	return sum
}

// checkNeverBelow logs the fault window's minimum and fails the test if
// the sampler did not watch the window or saw the mirror lose anything in
// it (neverBelow).
func checkNeverBelow(t *testing.T, s *mirrorSampler, from, to time.Time, floor, total int) faultSummary {
	t.Helper()
	sum := summarize(s.window(from, to))
	t.Logf("minimum mirrored instances during the fault: %d of %d (%d samples over %s, %d unreadable)",
		sum.Min, total, sum.Samples, to.Sub(from).Round(time.Millisecond), sum.Unreadable)
	if err := s.neverBelow(from, to, floor); err != nil {
		t.Error(err)
	}
	return sum
}

// neverBelow is an error if fewer than two samples in [from, to] were
// readable, if any held fewer than floor instances (what was mirrored
// before the fault) or a duplicate, or if any instance disappeared
// between two of them.
func (s *mirrorSampler) neverBelow(from, to time.Time, floor int) error {
	sum := summarize(s.window(from, to))
	var errs []error
	if n := sum.Samples - sum.Unreadable; n < 2 {
		errs = append(errs, fmt.Errorf("only %d readable samples during the fault: the sampler did not watch it", n))
	}
	if sum.Min < floor {
		errs = append(errs, fmt.Errorf("the mirror dropped to %d instances during the fault; %d were mirrored before it", sum.Min, floor))
	}
	if sum.MaxDups > 0 {
		errs = append(errs, fmt.Errorf("a sample during the fault held %d duplicate instances or nodes", sum.MaxDups))
	}
	if n, keys := s.lostSince(from); n > 0 {
		errs = append(errs, fmt.Errorf("%d instances disappeared during the fault (first: %v)", n, keys))
	}
	return errors.Join(errs...)
}

// markerOnlyComplete is an error if a sample taken at or after from saw
// the marker while the mirror held other than want instances (or the
// marker counted other than want): a marker is written only with a
// complete sync.
func (s *mirrorSampler) markerOnlyComplete(from time.Time, want int) error {
	for _, m := range s.window(from, time.Time{}) {
		if m.Err == nil && m.Marker != nil && (m.Instances != want || m.Marker.Instances != want) {
			return fmt.Errorf("at %s the marker (%d instances, generation %d) stood over a mirror of %d of %d instances",
				m.At.Format("15:04:05.000"), m.Marker.Instances, m.Marker.Generation, m.Instances, want)
		}
	}
	return nil
}

// sortedKeys returns the instance keys of the latest readable sample.
func (s *mirrorSampler) sortedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return nil
	}
	out := make([]string, 0, len(s.last.keys))
	for k := range s.last.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestFaultSampler: the sampler counts only the gateway's own instances
// of the test's services, and the checks the fault tests rely on fail on
// what they must catch: an instance that disappears, a duplicate, a
// marker over an incomplete mirror, a cluster it cannot read.
func TestFaultSampler(t *testing.T) {
	skipShortFault(t)
	g := harness.StartServer(t, "gw1")
	c := g.Client(t)
	node := func(name, gateway, srcNode string) *api.TxnOp {
		return &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: name, Address: "10.0.0.1", Meta: map[string]string{
			mirror.MetaManaged: mirror.ManagedValue, mirror.MetaGateway: gateway, mirror.MetaSourceDC: "dc1", mirror.MetaSourceNode: srcNode}}}}
	}
	svc := func(node, name, id string) *api.TxnOp {
		return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{ID: id, Service: name, Port: 80}}}
	}
	txn := func(ops ...*api.TxnOp) {
		t.Helper()
		if ok, resp, _, err := c.Txn().Txn(ops, nil); err != nil || !ok {
			t.Fatalf("txn: %v %+v", err, resp)
		}
	}
	txn(node("gwsync-dc1.n1", "gw1", "n1"), node("gwsync-dc1.n2", "gw1", "n2"), node("gwsync-dc1.o1", "gw2", "o1"),
		&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: "foreign", Address: "10.0.0.2"}}},
		svc("gwsync-dc1.n1", "fs-a", "fs-a-1"), svc("gwsync-dc1.n2", "fs-a", "fs-a-2"), svc("gwsync-dc1.n1", "other", "other-1"),
		svc("gwsync-dc1.o1", "fs-a", "fs-a-9"), svc("foreign", "fs-a", "fs-a-f"))
	s := startSampler(t, g, "gw1", func(name string) bool { return name == "fs-a" })
	start := s.waitFor(t, waitTimeout, func(x mirrorSample) error {
		if x.Instances != 2 || x.Dups != 0 || x.Ports[80] != 2 {
			return fmt.Errorf("sample %+v, want the 2 instances of gw1's fs-a", x)
		}
		return nil
	}).At
	// A marker over the complete mirror passes; over an incomplete one it
	// is caught.
	marker := mirror.Marker{Version: mirror.MarkerVersion, Gateway: "gw1", Instances: 2}
	if _, err := c.KV().Put(&api.KVPair{Key: mirror.MarkerKey(mirror.DefaultKVPrefix, "gw1"), Value: marker.Encode()}, nil); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, waitTimeout, func(x mirrorSample) error {
		if x.Marker == nil {
			return fmt.Errorf("marker not seen yet")
		}
		return nil
	})
	if err := s.neverBelow(start, time.Now(), 2); err != nil {
		t.Fatalf("an intact mirror fails the check: %v", err)
	}
	if err := s.markerOnlyComplete(start, 2); err != nil {
		t.Fatalf("a marker over the complete mirror: %v", err)
	}
	if err := s.markerOnlyComplete(start, 3); err == nil {
		t.Fatal("a marker over 2 of 3 instances was not caught")
	}

	// An instance disappears.
	gone := time.Now()
	if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: "gwsync-dc1.n2", ServiceID: "fs-a-2"}, nil); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, waitTimeout, func(x mirrorSample) error {
		if x.Instances != 1 {
			return fmt.Errorf("%d instances, want 1", x.Instances)
		}
		return nil
	})
	if n, keys := s.lostSince(gone); n != 1 || len(keys) != 1 || keys[0].Key != "dc1/n2/fs-a-2" {
		t.Fatalf("lost %d %v, want dc1/n2/fs-a-2", n, keys)
	}
	if err := s.neverBelow(gone, time.Now(), 2); err == nil {
		t.Fatal("a lost instance passed the check")
	}

	// The same source node under a second mirrored name.
	dup := time.Now()
	txn(node("gwsync-dc1x.n1", "gw1", "n1"), svc("gwsync-dc1x.n1", "fs-a", "fs-a-1"))
	s.waitFor(t, waitTimeout, func(x mirrorSample) error {
		if x.Dups != 2 {
			return fmt.Errorf("%d duplicates, want the node and its instance", x.Dups)
		}
		return nil
	})
	if err := s.neverBelow(dup, time.Now(), 1); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("a duplicate passed the check: %v", err)
	}

	// A cluster it cannot read is recorded as such, not as empty.
	g.Stop(t)
	down := time.Now()
	harness.Eventually(t, waitTimeout, func() error {
		if sum := summarize(s.window(down, time.Time{})); sum.Unreadable == 0 {
			return fmt.Errorf("no unreadable sample yet")
		}
		return nil
	})
	s.stop()
	if sum := summarize(s.window(down, time.Time{})); sum.Min == 0 {
		t.Fatal("a stopped cluster was counted as an empty mirror")
	}
}
