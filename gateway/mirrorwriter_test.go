package gateway_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
)

// mirrorWriter writes a dedicated cluster the way gwsync's controller
// does, entirely through package mirror: entries from mirror.Encoder,
// node names from mirror.NodeName, and in the same txn as the catalog ops
// the change feed (mirror.Changes.Next), the coverage shards when coverage
// changes, and the sync marker when asked. It remembers what it wrote, as
// the controller does, so it can compute deletes and the next feed.
type mirrorWriter struct {
	c   *api.Client
	enc mirror.Encoder
	kv  string

	mu       sync.Mutex
	changes  mirror.Changes
	covered  map[string]bool
	held     map[string]map[string]inst // service -> instance ID -> instance
	gen      uint64
	lastSync time.Time
}

// maxTxnOps is Consul's limit of operations in one txn.
const maxTxnOps = 128

func newMirrorWriter(c *api.Client) *mirrorWriter {
	w := &mirrorWriter{c: c, enc: mirror.Encoder{Gateway: gatewayName, NodePrefix: nodePrefix}, kv: mirror.DefaultKVPrefix}
	w.reset()
	return w
}

// reset forgets everything written: the cluster restarted empty.
func (w *mirrorWriter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changes = mirror.Changes{}
	w.covered = map[string]bool{}
	w.held = map[string]map[string]inst{}
}

// write is one controller write: the instances of the services named in
// set become exactly those listed (a service listed with no instances
// loses all of them), cover and uncover change the coverage, and marker
// rewrites the sync marker (a complete sync). Catalog ops are split into
// txns of at most 128 ops, each with its own change-feed entry; coverage
// and marker go with the last one.
func (w *mirrorWriter) write(t testing.TB, set map[string][]inst, cover, uncover []string, marker bool) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var ops []*api.TxnOp
	for _, svc := range sortedKeys(set) {
		ops = append(ops, w.serviceOps(t, svc, set[svc])...)
	}
	coverage := false
	for _, s := range cover {
		coverage = coverage || !w.covered[s]
		w.covered[s] = true
	}
	for _, s := range uncover {
		coverage = coverage || w.covered[s]
		delete(w.covered, s)
	}
	var touched []string
	if coverage {
		touched = append(append(touched, cover...), uncover...)
	}
	var tail []*api.TxnOp
	if coverage {
		tail = append(tail, w.coverageOps()...)
	}
	if marker {
		w.gen++
		w.lastSync = time.Now().UTC()
		m := mirror.Marker{Version: mirror.MarkerVersion, Gateway: gatewayName, Generation: w.gen, SyncedAt: w.lastSync, CheckedAt: w.lastSync}
		tail = append(tail, kvSet(mirror.MarkerKey(w.kv, gatewayName), m.Encode()))
	}
	// Catalog ops in chunks; every txn carries one feed entry.
	per := maxTxnOps - 1 - len(tail)
	for len(ops) > per {
		cut := per - per%2 // node and service ops come in pairs
		w.commit(t, ops[:cut], touchedBy(ops[:cut]), false, nil)
		ops = ops[cut:]
	}
	if len(ops) == 0 && len(tail) == 0 {
		return
	}
	w.commit(t, ops, uniq(append(touchedBy(ops), touched...)), coverage, tail)
}

// commit sends one txn: ops, the next change-feed entry, and tail.
func (w *mirrorWriter) commit(t testing.TB, ops []*api.TxnOp, services []string, coverage bool, tail []*api.TxnOp) {
	t.Helper()
	w.changes = w.changes.Next(gatewayName, services, coverage)
	if coverage {
		// Shards carry the feed's seq of the write that changed them.
		for _, op := range tail {
			if op.KV != nil && strings.HasPrefix(op.KV.Key, mirror.CoveragePrefix(w.kv, gatewayName)) {
				sh, err := mirror.DecodeCoverageShard(op.KV.Value)
				if err != nil {
					t.Fatal(err)
				}
				sh.Seq = w.changes.Seq
				op.KV.Value = sh.Encode()
			}
		}
	}
	all := append(append(slices.Clone(ops), kvSet(mirror.ChangesKey(w.kv, gatewayName), w.changes.Encode())), tail...)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ok, resp, _, err := w.c.Txn().Txn(all, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		t.Fatalf("mirror txn (%d ops): %v", len(all), err)
	}
	if !ok {
		t.Fatalf("mirror txn (%d ops) rolled back: %+v", len(all), resp.Errors)
	}
}

// serviceOps makes the ops that turn svc's mirrored instances into insts.
func (w *mirrorWriter) serviceOps(t testing.TB, svc string, insts []inst) []*api.TxnOp {
	t.Helper()
	var ops []*api.TxnOp
	want := map[string]inst{}
	for _, in := range insts {
		want[in.id()] = in
		ep, err := mirror.EndpointFromAPI(&api.ServiceEntry{
			Node:    &api.Node{Node: in.node, Address: "127.0.0.1", Datacenter: sourceDC},
			Service: &api.AgentService{ID: in.id(), Service: in.service, Address: "127.0.0.1", Port: in.port, Tags: in.tags},
		}, sourceDC)
		if err != nil {
			t.Fatal(err)
		}
		n, s, err := w.enc.Encode(&ep, 0)
		if err != nil {
			t.Fatal(err)
		}
		node, service := w.enc.NodeToAPI(&n), w.enc.ServiceToAPI(&s)
		ops = append(ops,
			&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: node}},
			&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: n.Name, Service: service}})
	}
	for id, in := range w.held[svc] {
		if _, ok := want[id]; !ok {
			// Each test instance has a node of its own: the controller
			// removes a node with its last service.
			ops = append(ops,
				&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: mirror.NodeName(nodePrefix, sourceDC, in.node), Service: api.AgentService{ID: id, Service: svc}}},
				&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: mirror.NodeName(nodePrefix, sourceDC, in.node)}}})
		}
	}
	w.held[svc] = want
	return ops
}

func (w *mirrorWriter) coverageOps() []*api.TxnOp {
	shards := make([][]string, mirror.CoverageShards)
	for s := range w.covered {
		i := mirror.ShardOf(s)
		shards[i] = append(shards[i], s)
	}
	ops := make([]*api.TxnOp, 0, mirror.CoverageShards)
	for i, names := range shards {
		slices.Sort(names)
		sh := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: gatewayName, Shard: i, Services: names}
		ops = append(ops, kvSet(mirror.CoverageKey(w.kv, gatewayName, i), sh.Encode()))
	}
	return ops
}

// heartbeat refreshes the marker's CheckedAt, as a live controller does
// every marker interval.
func (w *mirrorWriter) heartbeat(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	m := mirror.Marker{Version: mirror.MarkerVersion, Gateway: gatewayName, Generation: w.gen, SyncedAt: w.lastSync, CheckedAt: time.Now().UTC()}
	w.mu.Unlock()
	w.putMarker(t, m)
}

// heartbeats runs heartbeat every period until the test ends.
func (w *mirrorWriter) heartbeats(t testing.TB, period time.Duration) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				w.heartbeat(t)
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
}

// putMarker writes a marker as given (a heartbeat, or a hand-made one).
func (w *mirrorWriter) putMarker(t testing.TB, m mirror.Marker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := w.c.KV().Put(&api.KVPair{Key: mirror.MarkerKey(w.kv, gatewayName), Value: m.Encode()}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("put marker: %v", err)
	}
}

func kvSet(key string, value []byte) *api.TxnOp {
	return &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: key, Value: value}}
}

// touchedBy lists the services a chunk of catalog ops writes.
func touchedBy(ops []*api.TxnOp) []string {
	var out []string
	for _, op := range ops {
		if op.Service != nil {
			out = append(out, op.Service.Service.Service)
		}
	}
	return uniq(out)
}

func uniq(s []string) []string { return slices.Compact(slices.Sorted(slices.Values(s))) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// byService groups instances by service.
func byService(insts ...inst) map[string][]inst {
	out := map[string][]inst{}
	for _, in := range insts {
		out[in.service] = append(out[in.service], in)
	}
	return out
}

// serviceName is the i-th generated service name.
func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }
