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
// its services), up to txn_concurrency in flight, each checking that the
// change feed is still what this Store last saw; changed coverage shards
// that would not fit the last txn go in txns of their own; the last txn
// carries the last catalog batch and advances the change feed with a
// check-and-set (it fails if the cluster restarted or someone else wrote),
// with the coverage shards and the marker (check-and-set on the one last
// seen). Every txn starts with the HA fence.
//
// An op Consul rejects (an instance it will not take) is reported in
// Committed.Rejected and its batch is sent again without it (and without
// the rest of its node, if the node itself was refused): one bad instance
// never blocks the others. When a commit fails after some of its txns may
// have landed, the services it touched are remembered and announced by the
// next commit that succeeds, so resolvers following the change feed never
// miss a write.
func (s *Store) Commit(ctx context.Context, w syncer.Write) (syncer.Committed, error) {
	c := syncer.Committed{Nodes: map[string]uint64{}}
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if !loaded {
		return c, fmt.Errorf("%w: %w", syncer.ErrConflict, errStale)
	}
	if err := s.ensureFeed(ctx); err != nil {
		return c, err
	}
	all, seq := batches(planUnits(s.enc, w.Plan), maxTxnOps-recordOps, maxTxnBytes-recordBytes)
	var last []op
	if len(all) > 0 {
		last, all = all[len(all)-1], all[:len(all)-1]
	}
	rec, err := s.records(w)
	if err != nil {
		return c, err
	}
	sent := false // a txn may have landed: a failure leaves writes to announce
	fail := func(err error) (syncer.Committed, error) {
		if sent {
			s.remember(w, rec)
		}
		s.invalidate()
		return c, err
	}
	if len(all) > 0 {
		sent = true
		if err := s.sendIntermediate(ctx, all, slices.Contains(seq, true), &c); err != nil {
			return fail(err)
		}
	}
	for _, group := range rec.early {
		sent = true
		if _, err := s.sendBatch(ctx, nil, append(s.chainCheck(), group...)); err != nil {
			return fail(err)
		}
	}
	sent = true
	got, err := s.sendBatch(ctx, last, rec.final)
	merge(&c, got)
	if err != nil {
		return fail(err)
	}
	s.mu.Lock()
	s.changes, s.coverage = rec.changes, rec.coverage
	s.chIdx = got.kvIndex[mirror.ChangesKey(s.kvPrefix, s.gateway())]
	if w.Marker != nil {
		s.mkIdx = got.kvIndex[mirror.MarkerKey(s.kvPrefix, s.gateway())]
	}
	s.pending, s.pendingCoverage = nil, false
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

// sendIntermediate sends every batch but the last, up to txn_concurrency
// in flight (one at a time when a node was split over batches: its later
// batches need its first). Once ctx ends, no new batch starts; the ones in
// flight finish.
func (s *Store) sendIntermediate(ctx context.Context, all [][]op, split bool, c *syncer.Committed) error {
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(s.txnConc)
	if split {
		eg.SetLimit(1)
	}
	chain := s.chainCheck()
	for _, b := range all {
		eg.Go(safe(func() error {
			if err := ectx.Err(); err != nil {
				return fmt.Errorf("commit stopped before all batches: %w", err)
			}
			got, err := s.sendBatch(ectx, b, chain)
			mu.Lock()
			defer mu.Unlock()
			merge(c, got)
			return err
		}))
	}
	return eg.Wait()
}

// ensureFeed creates the change feed on its own before the first write to
// a cluster that has none: every later batch then checks its index, so
// even the first commit cannot land in a cluster that restarts under it.
func (s *Store) ensureFeed(ctx context.Context) error {
	s.mu.Lock()
	idx, feed := s.chIdx, s.changes
	s.mu.Unlock()
	if idx != 0 {
		return nil
	}
	key := mirror.ChangesKey(s.kvPrefix, s.gateway())
	first := mirror.Changes{Version: mirror.ChangesVersion, Gateway: s.gateway(), Seq: feed.Seq, CoverageSeq: feed.CoverageSeq, Recent: feed.Recent}
	got, err := s.sendBatch(ctx, nil, []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: first.Encode(), Index: 0}}})
	if err != nil {
		s.invalidate()
		return err
	}
	s.mu.Lock()
	s.changes, s.chIdx = first, got.kvIndex[key]
	s.mu.Unlock()
	return nil
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

// chainCheck is the op every batch before the last carries: the change
// feed is still what this Store last saw (it moves only with the last
// txn), so not one write of a commit lands in a cluster that restarted (or
// that someone else wrote) since. It only reads, so batches still run in
// parallel.
func (s *Store) chainCheck() []*api.TxnOp {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCheckIndex, Key: mirror.ChangesKey(s.kvPrefix, s.gateway()), Index: s.chIdx}}}
}

// invalidate forgets the chain: the next Commit needs a Load.
func (s *Store) invalidate() {
	s.mu.Lock()
	s.loaded, s.catKnown = false, false
	s.mu.Unlock()
}

// sendBatch sends catalog ops (after records: the chain check, or the last
// txn's record ops) behind the fence. Ops Consul rejects are dropped, with
// the rest of their node when the node itself was rejected, and the batch
// is sent again; Consul reports its checks in two rounds (ACL and
// validation first, then the state store), so this repeats while new
// rejections come, at most once per op.
func (s *Store) sendBatch(ctx context.Context, batch []op, records []*api.TxnOp) (committed, error) {
	out := committed{Committed: syncer.Committed{Nodes: map[string]uint64{}}}
	if len(batch) == 0 && len(records) == 0 {
		return out, nil
	}
	// At most one more attempt per op of the original batch: the batch
	// shrinks as ops are dropped, and the records must still be sent once
	// every op was refused.
	for attempt, n := 0, len(batch); attempt <= n; attempt++ {
		ops := make([]*api.TxnOp, 0, len(records)+len(batch)+1)
		ops = append(ops, records...)
		for _, o := range batch {
			ops = append(ops, o.txn)
		}
		ops, fenced := s.fenced(ops)
		base := len(ops) - len(batch) // index of the first catalog op
		res, err := s.send(ctx, ops)
		if err != nil {
			return out, err
		}
		if res.ok {
			out.Ops += len(batch)
			out.kvIndex = res.kvIndex
			maps.Copy(out.Nodes, res.nodes)
			s.countWrites(batch, records)
			return out, nil
		}
		if fenced != "" && isFenceFailure(res.errs[0]) {
			return out, &syncer.FencedError{Session: fenced}
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
		if len(bad) == 0 {
			return out, fmt.Errorf("txn rejected: %d op errors", len(res.errs))
		}
		var dropped []op
		batch, dropped = without(batch, bad)
		for _, o := range dropped {
			out.Rejected = append(out.Rejected, syncer.Rejected{Kind: o.kind, Node: o.node, Service: o.svc, ID: o.id, Reason: "its node was rejected"})
		}
		if len(batch) == 0 && len(records) == 0 {
			return out, nil
		}
	}
	return out, fmt.Errorf("txn rejected again after dropping every refused op")
}

func (s *Store) countWrites(batch []op, records []*api.TxnOp) {
	for _, o := range batch {
		s.metrics.DedicatedWrites.WithLabelValues(s.gateway(), o.verb).Inc()
	}
	for _, r := range records {
		if r.KV != nil && (r.KV.Verb == api.KVSet || r.KV.Verb == api.KVCAS) {
			s.metrics.DedicatedWrites.WithLabelValues(s.gateway(), "kv_set").Inc()
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
