package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTable(t *testing.T) {
	tb := newTable()
	const n = 500
	for i := range n {
		e := &entry{service: fmt.Sprintf("svc-%d", i)}
		e.lastAccess.Store(int64(i))
		if got, added := tb.add(e); !added || got != e {
			t.Fatalf("add %s: %v", e.service, added)
		}
	}
	if dup, added := tb.add(&entry{service: "svc-7"}); added || dup.lastAccess.Load() != 7 {
		t.Fatal("a second entry for svc-7 replaced the first")
	}
	if tb.len() != n || tb.get("svc-42") == nil || tb.get("nope") != nil {
		t.Fatalf("len %d, get svc-42 %v", tb.len(), tb.get("svc-42"))
	}
	old := tb.oldest(10)
	for i := range 10 {
		if !old[tb.get(fmt.Sprintf("svc-%d", i))] {
			t.Fatalf("svc-%d not among the 10 oldest", i)
		}
	}
	if removed := tb.removeIf(func(e *entry) bool { return old[e] }); removed != 10 || tb.len() != n-10 || tb.get("svc-3") != nil {
		t.Fatalf("removed %d, len %d", removed, tb.len())
	}
	seen := 0
	tb.each(func(*entry) { seen++ })
	if seen != n-10 {
		t.Fatalf("each saw %d, want %d", seen, n-10)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = tb.get("svc-99") }); allocs != 0 {
		t.Fatalf("get allocates %.1f times", allocs)
	}
}

func TestNegCache(t *testing.T) {
	c := newNegCache(16)
	a := &Answer{Service: "x"}
	c.put("x", a, 100, 0)
	if c.get("x", 99) != a || c.get("x", 100) != nil || c.len() != 0 {
		t.Fatal("an entry was not served until, and only until, it expired")
	}
	for i := range 100 {
		c.put(fmt.Sprint(i), a, 1000, 0)
		if c.len() > 16 {
			t.Fatalf("%d entries, cap 16", c.len())
		}
	}
	c.put("y", a, 1000, 0)
	c.drop([]string{"y"})
	if c.get("y", 1) != nil {
		t.Fatal("dropped entry served")
	}
	if left := c.sweep(1000); left != 0 {
		t.Fatalf("%d entries left after all expired", left)
	}
	c.put("z", a, 1000, 0)
	c.clear()
	if c.len() != 0 {
		t.Fatal("clear left entries")
	}
}

// Idle services are evicted (with the metric), past MaxServices the least
// recently used go, and the snapshot keeps only live services.
func TestResolver_Eviction(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "snap")
	r := offlineResolverWith(t, reg, func(o *Options) {
		o.Now, o.IdleTimeout, o.MaxServices, o.SnapshotPath = clock, time.Minute, 128, path
	})
	markUsable(r)
	for i := range 100 {
		r.install(fmt.Sprintf("svc-%03d", i), &Answer{Source: SourceLocal, Instances: weighted(1), FetchedAt: now})
	}
	now = now.Add(45 * time.Second)
	for i := range 10 { // the first ten stay in use
		if _, err := r.Resolve(context.Background(), fmt.Sprintf("svc-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(30 * time.Second)
	r.evictIdle(now)
	if got := r.held.len(); got != 10 {
		t.Fatalf("%d held after the idle sweep, want the 10 in use", got)
	}
	if got := testutil.ToFloat64(r.m.evictions[evictIdle]); got != 90 {
		t.Fatalf("evictions{reason=idle} = %v, want 90", got)
	}
	r.writeSnapshot()
	snap, err := readSnapshot(path, "edge", DefaultMaxSnapshotBytes)
	if err != nil || len(snap) != 10 {
		t.Fatalf("snapshot holds %d services (%v), want the 10 live ones", len(snap), err)
	}

	for i := range 200 {
		now = now.Add(time.Second)
		r.install(fmt.Sprintf("new-%03d", i), &Answer{Source: SourceLocal, Instances: weighted(1), FetchedAt: now})
		if r.held.len() > 128 {
			t.Fatalf("%d held, cap 128", r.held.len())
		}
	}
	if r.held.get("new-199") == nil || r.held.get("svc-000") != nil {
		t.Fatal("capacity eviction did not keep the newest and drop the oldest")
	}
	if got := testutil.ToFloat64(r.m.evictions[evictCapacity]); got < 200+10-128 {
		t.Fatalf("evictions{reason=capacity} = %v, want at least %d", got, 200+10-128)
	}
	if got := testutil.ToFloat64(r.m.services); got != float64(r.held.len()) {
		t.Fatalf("services gauge %v, held %d", got, r.held.len())
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
