package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/hashicorp/consul/api"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// Commit writes w. Catalog ops go in batches of whole nodes (a node with
// its services), up to txn_concurrency in flight; the last batch also
// carries the records: the change feed (check-and-set on the index last
// seen, which fails if the cluster restarted or someone else wrote), the
// coverage shards that changed, and the marker (check-and-set on the one
// last seen). An op Consul rejects (an instance it will not take) is
// reported in Committed.Rejected and its batch is sent again without it
// (and without the rest of its node, if the node itself was refused):
// one bad instance never blocks the others.
func (s *Store) Commit(ctx context.Context, w syncer.Write) (syncer.Committed, error) {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if !loaded {
		return syncer.Committed{}, fmt.Errorf("%w: %w", syncer.ErrConflict, errStale)
	}
	all, seq := batches(planUnits(s.enc, w.Plan), maxTxnOps-recordOps, maxTxnBytes-64<<10)
	var last []op
	if len(all) > 0 {
		last, all = all[len(all)-1], all[:len(all)-1]
	}
	var c syncer.Committed
	c.Nodes = map[string]uint64{}
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	limit := s.txnConc
	if slices.Contains(seq, true) {
		limit = 1 // a split node: its later batches need its first
	}
	eg.SetLimit(limit)
	chain := s.chainCheck()
	for _, b := range all {
		eg.Go(safe(func() error {
			got, err := s.sendBatch(ectx, b, chain)
			mu.Lock()
			defer mu.Unlock()
			merge(&c, got)
			return err
		}))
	}
	if err := eg.Wait(); err != nil {
		s.invalidate()
		return c, err
	}
	records, next, err := s.records(w)
	if err != nil {
		return c, err
	}
	got, err := s.sendBatch(ctx, last, records)
	merge(&c, got)
	if err != nil {
		s.invalidate()
		return c, err
	}
	s.mu.Lock()
	s.changes = next.changes
	s.chIdx = got.kvIndex[mirror.ChangesKey(s.kvPrefix, s.gateway())]
	if w.Marker != nil {
		s.mkIdx = got.kvIndex[mirror.MarkerKey(s.kvPrefix, s.gateway())]
	}
	s.coverage = next.coverage
	s.mu.Unlock()
	if c.Ops > 0 {
		// The catalog moved with this commit: note where it is now (a
		// write by someone else between the commit and this read goes
		// unseen until the model's periodic full reread).
		cat, err := s.catalogIndex(ctx)
		s.mu.Lock()
		s.cat, s.catKnown = cat, err == nil
		s.mu.Unlock()
	}
	return c, nil
}

// committed is what one batch wrote.
type committed struct {
	syncer.Committed
	kvIndex map[string]uint64
}

func merge(c *syncer.Committed, got committed) {
	c.Ops += got.Ops
	c.Rejected = append(c.Rejected, got.Rejected...)
	maps.Copy(c.Nodes, got.Nodes)
}

// chainCheck is the op every intermediate batch carries: the change feed
// is still what this Store last saw (it moves only with the final txn), so
// not one write of a commit lands in a cluster that restarted (or that
// someone else wrote) since. It reads, so batches can still run in
// parallel.
func (s *Store) chainCheck() []*api.TxnOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := mirror.ChangesKey(s.kvPrefix, s.gateway())
	if s.chIdx == 0 {
		return []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: key}}}
	}
	return []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: key, Index: s.chIdx}}}
}

// invalidate forgets the chain: the next Commit needs a Load.
func (s *Store) invalidate() {
	s.mu.Lock()
	s.loaded, s.catKnown = false, false
	s.mu.Unlock()
}

// nextRecords is the chain state after a successful final txn.
type nextRecords struct {
	changes  mirror.Changes
	coverage [mirror.CoverageShards][]string
}

// records builds the final txn's record ops: the change feed (always), the
// coverage shards that changed, the marker.
func (s *Store) records(w syncer.Write) ([]*api.TxnOp, nextRecords, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := nextRecords{coverage: s.coverage}
	var changed []int
	if w.Coverage != nil || len(w.CoverAdd) > 0 {
		var shards [mirror.CoverageShards]map[string]bool
		for i := range shards {
			shards[i] = map[string]bool{}
			if w.Coverage == nil {
				for _, n := range s.coverage[i] {
					shards[i][n] = true
				}
			}
		}
		for n := range w.Coverage {
			shards[mirror.ShardOf(n)][n] = true
		}
		for _, n := range w.CoverAdd {
			shards[mirror.ShardOf(n)][n] = true
		}
		for i := range shards {
			names := slices.Sorted(maps.Keys(shards[i]))
			if !slices.Equal(names, s.coverage[i]) {
				next.coverage[i] = names
				changed = append(changed, i)
			}
		}
	}
	touched := slices.Clone(w.Touched)
	for _, i := range changed {
		touched = append(touched, diffNames(s.coverage[i], next.coverage[i])...)
	}
	next.changes = s.changes.Next(s.gateway(), touched, len(changed) > 0)
	ops := []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: mirror.ChangesKey(s.kvPrefix, s.gateway()), Value: next.changes.Encode(), Index: s.chIdx}}}
	for _, i := range changed {
		shard := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: s.gateway(), Shard: i, Seq: next.changes.Seq, Services: next.coverage[i]}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: mirror.CoverageKey(s.kvPrefix, s.gateway(), i), Value: shard.Encode()}})
	}
	if w.Marker != nil {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: mirror.MarkerKey(s.kvPrefix, s.gateway()), Value: w.Marker.Encode(), Index: s.mkIdx}})
	}
	return ops, next, nil
}

// diffNames are the names in exactly one of two sorted lists.
func diffNames(a, b []string) []string {
	var out []string
	for _, n := range a {
		if _, ok := slices.BinarySearch(b, n); !ok {
			out = append(out, n)
		}
	}
	for _, n := range b {
		if _, ok := slices.BinarySearch(a, n); !ok {
			out = append(out, n)
		}
	}
	return out
}

// sendBatch sends catalog ops (and, for the final txn, records) behind the
// fence. Ops Consul rejects are dropped, with the rest of their node when
// the node itself was rejected, and the batch is sent once more.
func (s *Store) sendBatch(ctx context.Context, batch []op, records []*api.TxnOp) (committed, error) {
	out := committed{Committed: syncer.Committed{Nodes: map[string]uint64{}}}
	if len(batch) == 0 && len(records) == 0 {
		return out, nil
	}
	for attempt := 0; ; attempt++ {
		ops := make([]*api.TxnOp, 0, len(records)+len(batch)+1)
		ops = append(ops, records...)
		for _, o := range batch {
			ops = append(ops, o.txn)
		}
		ops = s.fenced(ops)
		base := len(ops) - len(batch) // index of the first catalog op
		res, err := s.send(ctx, ops)
		if err != nil {
			return out, err
		}
		if res.ok {
			out.Ops += len(batch)
			out.kvIndex = res.kvIndex
			maps.Copy(out.Nodes, res.nodes)
			for _, o := range batch {
				s.metrics.DedicatedWrites.WithLabelValues(s.gateway(), o.verb).Inc()
			}
			for _, r := range records {
				if r.KV != nil && (r.KV.Verb == api.KVSet || r.KV.Verb == api.KVCAS) {
					s.metrics.DedicatedWrites.WithLabelValues(s.gateway(), "kv_set").Inc()
				}
			}
			return out, nil
		}
		if res.fenced {
			return out, syncer.ErrFenced
		}
		var bad []op
		for i, what := range res.errs {
			switch {
			case i < base && isPermissionDenied(what): // the token may not write the records
				return out, fmt.Errorf("txn refused by ACLs: %s", what)
			case i < base: // the change feed or the marker: not what we last saw
				return out, fmt.Errorf("%w: %s", syncer.ErrConflict, what)
			case i-base < len(batch):
				o := batch[i-base]
				bad = append(bad, o)
				out.Rejected = append(out.Rejected, syncer.Rejected{Kind: o.kind, Node: o.node, Service: o.svc, ID: o.id, Reason: what})
			}
		}
		if len(bad) == 0 || attempt > 0 {
			return out, fmt.Errorf("txn rejected: %d op errors", len(res.errs))
		}
		var dropped []op
		batch, dropped = without(batch, bad)
		for _, o := range dropped {
			out.Rejected = append(out.Rejected, syncer.Rejected{Kind: o.kind, Node: o.node, Service: o.svc, ID: o.id, Reason: "its node was rejected"})
		}
	}
}

// without drops the rejected ops, and every op on a node whose node op was
// rejected (a service must never land on a node gwsync did not write);
// dropped lists the latter.
func without(batch, bad []op) (kept, dropped []op) {
	badNode := map[string]bool{}
	badOp := map[*api.TxnOp]bool{}
	for _, o := range bad {
		badOp[o.txn] = true
		if o.kind == syncer.KindNode {
			badNode[o.node] = true
		}
	}
	for _, o := range batch {
		switch {
		case badOp[o.txn]:
		case badNode[o.node]:
			dropped = append(dropped, o)
		default:
			kept = append(kept, o)
		}
	}
	return kept, dropped
}
