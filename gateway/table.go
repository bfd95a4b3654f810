package gateway

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
)

// entry is one held service: looked up recently and kept fresh, from the
// watch while the mirror covers it, on demand from the public cluster
// otherwise. No goroutine belongs to an entry.
type entry struct {
	service string
	answer  atomic.Pointer[Answer]
	// lastAccess is the Unix second of the last lookup; a lookup writes it
	// only when the second changed, so concurrent lookups of a hot service
	// do not contend on it.
	lastAccess atomic.Int64
	// nextRefresh (Unix nanoseconds): an answer that is not a trusted
	// local one is refreshed on a lookup after this.
	nextRefresh atomic.Int64
	// refreshing: queued for (or in) a background refresh.
	refreshing atomic.Bool
	// failures counts refreshes in a row that found no cluster; only the
	// worker that set refreshing touches it.
	failures int
}

// touch records a lookup at Unix second sec.
func (e *entry) touch(sec int64) {
	if e.lastAccess.Load() != sec {
		e.lastAccess.Store(sec)
	}
}

// tableShards spreads held services over independent copy-on-write maps:
// a new service copies one shard (1/64 of the table), not all of it.
const tableShards = 64

// table holds the services. Lookups are lock-free (an atomic load and a
// map read); adding and removing copy one shard under its lock. Lookups
// are constant and new services rare, so copying is the cheap side.
type table struct {
	seed   maphash.Seed
	shards [tableShards]tableShard
	count  atomic.Int64
}

type tableShard struct {
	mu sync.Mutex // writers only
	m  atomic.Pointer[map[string]*entry]
}

func newTable() *table {
	t := &table{seed: maphash.MakeSeed()}
	for i := range t.shards {
		empty := map[string]*entry{}
		t.shards[i].m.Store(&empty)
	}
	return t
}

func (t *table) shard(name string) *tableShard {
	return &t.shards[maphash.String(t.seed, name)%tableShards]
}

// get returns the held entry for name, or nil. It does not allocate.
func (t *table) get(name string) *entry {
	return (*t.shard(name).m.Load())[name]
}

// add holds e unless its service is held already; it returns the held
// entry and whether it is e.
func (t *table) add(e *entry) (*entry, bool) {
	s := t.shard(e.service)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.m.Load()
	if cur := old[e.service]; cur != nil {
		return cur, false
	}
	next := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[e.service] = e
	s.m.Store(&next)
	t.count.Add(1)
	return e, true
}

// removeIf drops every entry for which drop is true and returns how many.
func (t *table) removeIf(drop func(*entry) bool) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		old := *s.m.Load()
		var next map[string]*entry
		for k, e := range old {
			if !drop(e) {
				continue
			}
			if next == nil {
				next = make(map[string]*entry, len(old))
				for k2, v := range old {
					next[k2] = v
				}
			}
			delete(next, k)
			n++
		}
		if next != nil {
			s.m.Store(&next)
		}
		s.mu.Unlock()
	}
	t.count.Add(-int64(n))
	return n
}

// each calls fn for every held entry (a consistent view per shard).
func (t *table) each(fn func(*entry)) {
	for i := range t.shards {
		for _, e := range *t.shards[i].m.Load() {
			fn(e)
		}
	}
}

func (t *table) len() int { return int(t.count.Load()) }

// oldest returns the n least recently looked-up entries.
func (t *table) oldest(n int) map[*entry]bool {
	type aged struct {
		e  *entry
		at int64
	}
	all := make([]aged, 0, t.len())
	t.each(func(e *entry) { all = append(all, aged{e: e, at: e.lastAccess.Load()}) })
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.at, b.at) })
	out := make(map[*entry]bool, n)
	for _, a := range all[:min(n, len(all))] {
		out[a.e] = true
	}
	return out
}
