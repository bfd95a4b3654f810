package consul

import (
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/syncer"
)

// The gateway's records a commit writes with its last txn: the change feed
// (always: it is the chain every batch checks, and it tells resolvers what
// changed), the coverage shards that changed, the marker.

// recordBytes is the room the last txn keeps for its records beyond its
// catalog ops: the change feed (at most MaxRecentNames names, base64 in
// the txn body), the marker and coverage shards that fit; shards that do
// not go in txns of their own before it.
const recordBytes = 64 << 10

// finalShardBytes is how much of that room coverage shards may take.
const finalShardBytes = 32 << 10

// txnRecords is what a commit writes besides its catalog ops.
type txnRecords struct {
	// final are the last txn's record ops; early, groups of coverage
	// shards sent before it (each group a txn of its own).
	final []*api.TxnOp
	early [][]*api.TxnOp
	// The chain after the last txn.
	changes  mirror.Changes
	coverage [mirror.CoverageShards][]string
	// touched are the services the change feed names for this commit.
	touched         []string
	coverageChanged bool
}

// records builds the record ops of a commit of w.
func (s *Store) records(w syncer.Write) (txnRecords, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec txnRecords
	next, changed, moved := mirror.NextCoverage(s.coverage, w.Coverage, w.CoverAdd, w.CoverDel)
	rec.coverage = next
	rec.touched = append(append(slices.Clone(w.Touched), s.pending...), moved...)
	rec.coverageChanged = len(changed) > 0 || s.pendingCoverage
	rec.changes = s.changes.Next(s.gateway(), rec.touched, rec.coverageChanged)
	rec.final = []*api.TxnOp{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: mirror.ChangesKey(s.kvPrefix, s.gateway()),
		Value: rec.changes.Encode(), Index: s.chIdx}}}
	var group []*api.TxnOp
	size, finalSize := 0, 0
	for _, i := range changed {
		shard := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: s.gateway(), Shard: i, Seq: rec.changes.Seq, Services: rec.coverage[i]}
		v := shard.Encode()
		o := &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: mirror.CoverageKey(s.kvPrefix, s.gateway(), i), Value: v}}
		wire := len(v)*4/3 + 128 // base64 in the txn body
		if finalSize+wire <= finalShardBytes {
			rec.final = append(rec.final, o)
			finalSize += wire
			continue
		}
		// A large coverage (a first sync of tens of thousands of
		// services) would not fit one txn body: its shards go first, in
		// txns of their own. Readers take a coverage change from the
		// change feed (CoverageSeq), which moves only with the last txn.
		if len(group) > 0 && size+wire > maxTxnBytes-recordBytes {
			rec.early = append(rec.early, group)
			group, size = nil, 0
		}
		group = append(group, o)
		size += wire
	}
	if len(group) > 0 {
		rec.early = append(rec.early, group)
	}
	if w.Marker != nil {
		rec.final = append(rec.final, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: mirror.MarkerKey(s.kvPrefix, s.gateway()),
			Value: w.Marker.Encode(), Index: s.mkIdx}})
	}
	return rec, nil
}

// maxPending bounds the services remembered for announcement; past it the
// next change says "all".
const maxPending = mirror.MaxRecentNames

// remember keeps what a failed commit may have written, for the next
// commit that succeeds to announce: its txns may have landed without the
// last one, which alone advances the change feed.
func (s *Store) remember(w syncer.Write, rec txnRecords) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := append(slices.Clone(s.pending), rec.touched...)
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) > maxPending {
		names = names[:maxPending+1] // Changes.Next turns too many into "all"
	}
	s.pending = names
	s.pendingCoverage = s.pendingCoverage || rec.coverageChanged
}

// isFenceFailure matches Consul's check-session errors (state store
// kvsCheckSessionTxn): "failed session check for key ..." when another
// session (or none) holds the key, "failed to check session, key ...
// doesn't exist" when it is gone.
func isFenceFailure(what string) bool {
	return strings.Contains(what, "failed session check") || strings.Contains(what, "failed to check session")
}
