package syncer

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/gwsync/gwsync/mirror"
)

// The fake store's records: the change-feed chain, coverage shards and
// marker, written as syncer/consul writes them, and the check that every
// commit's feed entry names each service whose entries it changed.

// serviceViewLocked is every owned instance in its API form, by service
// name, for the change-feed check. mu held.
func (s *fakeStore) serviceViewLocked() map[string]string {
	out := map[string]string{}
	for node, svcs := range s.services {
		n, ok := s.nodes[node]
		if !ok || s.enc.Owner(n.Meta) != mirror.Mine {
			continue
		}
		for _, svc := range svcs {
			n.ModifyIndex = 0
			out[svc.Service] += fmt.Sprintf("%+v %+v\n", n, svc)
		}
	}
	for name, v := range out {
		lines := strings.Split(v, "\n")
		sort.Strings(lines)
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

// checkRecordsLocked checks the final txn's check-and-sets: the change
// feed at the index last loaded, the marker at the one last seen. mu held.
func (s *fakeStore) checkRecordsLocked(w Write) error {
	if kv, ok := s.kv[mirror.ChangesKey(s.kvPrefix, s.gateway())]; ok != (s.chIdx != 0) || ok && kv.ModifyIndex != s.chIdx {
		return fmt.Errorf("%w: change feed CAS failed", ErrConflict)
	}
	if w.Marker != nil {
		if kv, ok := s.kv[mirror.MarkerKey(s.kvPrefix, s.gateway())]; ok != (s.mkIdx != 0) || ok && kv.ModifyIndex != s.mkIdx {
			return fmt.Errorf("%w: marker CAS failed", ErrConflict)
		}
	}
	return nil
}

// writeRecordsLocked writes the feed, changed coverage shards and marker,
// and checks that the feed names every service whose entries changed.
func (s *fakeStore) writeRecordsLocked(w Write, before map[string]string) {
	next, changed, moved := mirror.NextCoverage(s.coverage, w.Coverage, w.CoverAdd, w.CoverDel)
	touched := append(slices.Clone(w.Touched), moved...)
	s.changes = s.changes.Next(s.gateway(), touched, len(changed) > 0)
	s.chIdx = s.putKV(mirror.ChangesKey(s.kvPrefix, s.gateway()), s.changes.Encode())
	for _, i := range changed {
		sh := mirror.CoverageShard{Version: mirror.CoverageVersion, Gateway: s.gateway(), Shard: i, Seq: s.changes.Seq, Services: next[i]}
		s.putKV(mirror.CoverageKey(s.kvPrefix, s.gateway(), i), sh.Encode())
	}
	s.coverage = next
	if w.Marker != nil {
		s.mkIdx = s.putKV(mirror.MarkerKey(s.kvPrefix, s.gateway()), w.Marker.Encode())
	}
	after := s.serviceViewLocked()
	last := s.changes.Recent[len(s.changes.Recent)-1]
	for _, name := range slices.Sorted(maps.Keys(unionKeys(before, after))) {
		if before[name] != after[name] && !last.All && !slices.Contains(last.Services, name) {
			s.problems = append(s.problems, fmt.Sprintf("commit %d changed service %q, the change feed (seq %d) lists %v", s.commits, name, last.Seq, last.Services))
		}
	}
}

func unionKeys(a, b map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
