package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// offlineResolver builds a resolver whose clients point at a closed port and
// that is never run: for testing the in-memory paths only.
func offlineResolver(t testing.TB, reg *prometheus.Registry, now func() time.Time) *Resolver {
	return offlineResolverWith(t, reg, func(o *Options) { o.Now = now })
}

func offlineResolverWith(t testing.TB, reg *prometheus.Registry, tweak func(*Options)) *Resolver {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Local: c, Public: c, SourceDatacenter: "dc1", Gateway: "edge", Registerer: reg}
	tweak(&o)
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.cancel)
	return r
}

// markUsable makes an offline resolver's local cluster usable, covering
// services, as a watch round would.
func markUsable(r *Resolver, services ...string) {
	cov := &coverage{names: map[string]struct{}{}}
	for _, s := range services {
		cov.names[s] = struct{}{}
	}
	r.setView(view{known: true, freshAt: r.opts.Now(), cov: cov})
}

func TestNew_Validation(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New with empty options succeeded")
	}
}

func TestResolver_ResolveCached(t *testing.T) {
	reg := prometheus.NewRegistry()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := at.Add(90 * time.Second)
	r := offlineResolver(t, reg, func() time.Time { return now })
	markUsable(r, "web", "gone")
	r.install("web", &Answer{Service: "web", Source: SourceLocal, FetchedAt: at, Instances: weighted(1, 1)})
	r.install("gone", &Answer{Service: "gone", Source: SourcePublic, FetchedAt: at})

	a, err := r.Resolve(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if a.Source != SourceLocal || len(a.Instances) != 2 || a.Age != 90*time.Second {
		t.Fatalf("answer %+v, want 2 local instances aged 90s", a)
	}
	a, err = r.Resolve(context.Background(), "gone")
	if err != nil || !a.Empty() || a.Source != SourcePublic {
		t.Fatalf("answer %+v, %v; want empty public answer", a, err)
	}
	lookups := func(source, result string) float64 {
		return testutil.ToFloat64(r.m.lookups[sourceIndex(t, source)][resultIndex(t, result)])
	}
	if got := lookups("local", "ok"); got != 1 {
		t.Errorf("lookups{local,ok} = %v, want 1", got)
	}
	if got := lookups("public", "empty"); got != 1 {
		t.Errorf("lookups{public,empty} = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(reg, "gwsync_resolver_answer_age_seconds"); n != 1 {
		t.Errorf("answer age histogram series = %d, want 1", n)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.Resolve(context.Background(), "web"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("cached Resolve allocates %.1f times, want 0", allocs)
	}
}

func TestResolver_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	offlineResolver(t, reg, nil)
	for _, name := range []string{"gwsync_resolver_lookups_total", "gwsync_resolver_breaker_state", "gwsync_resolver_public_in_flight"} {
		if n := testutil.CollectAndCount(reg, name); n == 0 {
			t.Errorf("metric %s not registered", name)
		}
	}
	if _, err := New(Options{Local: &api.Client{}, Public: &api.Client{}, SourceDatacenter: "dc1", Gateway: "edge", Registerer: reg}); err == nil {
		t.Error("second resolver on one registry: want a duplicate registration error")
	}
}

func sourceIndex(t testing.TB, s string) Source {
	for i := Source(0); i < numSources; i++ {
		if i.String() == s {
			return i
		}
	}
	t.Fatalf("unknown source %q", s)
	return 0
}

func resultIndex(t testing.TB, s string) result {
	for i := result(0); i < numResults; i++ {
		if resultNames[i] == s {
			return i
		}
	}
	t.Fatalf("unknown result %q", s)
	return 0
}

func cachedResolver(b *testing.B) *Resolver {
	r := offlineResolver(b, prometheus.NewRegistry(), nil)
	markUsable(r, "web", "api", "auth", "billing", "search")
	for _, s := range []string{"web", "api", "auth", "billing", "search"} {
		r.install(s, &Answer{Service: s, Source: SourceLocal, FetchedAt: time.Now(), Instances: weighted(1, 2, 3)})
	}
	return r
}

// BenchmarkResolver_ResolveCached is the cost of one cached Resolve: map
// read, atomic load, clock read, a counter and a histogram observation.
func BenchmarkResolver_ResolveCached(b *testing.B) {
	r := cachedResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		a, err := r.Resolve(ctx, "billing")
		if err != nil || len(a.Instances) != 3 {
			b.Fatalf("resolve: %+v, %v", a, err)
		}
	}
}

// BenchmarkResolver_ResolveCachedParallel adds contention: every core
// increments the same counter and histogram.
func BenchmarkResolver_ResolveCachedParallel(b *testing.B) {
	r := cachedResolver(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a, err := r.Resolve(ctx, "billing")
			if err != nil || len(a.Instances) != 3 {
				b.Fatalf("resolve: %+v, %v", a, err)
			}
		}
	})
}

// BenchmarkResolver_ResolveCachedMany is a cached Resolve with 2,000
// services held, looked up in turn (the table's shards and maps at scale).
func BenchmarkResolver_ResolveCachedMany(b *testing.B) {
	r := offlineResolver(b, prometheus.NewRegistry(), nil)
	names := make([]string, 2000)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%04d", i)
	}
	markUsable(r, names...)
	for _, s := range names {
		r.install(s, &Answer{Service: s, Source: SourceLocal, FetchedAt: time.Now(), Instances: weighted(1, 2)})
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a, err := r.Resolve(ctx, names[i%len(names)])
		if err != nil || len(a.Instances) != 2 {
			b.Fatalf("resolve: %+v, %v", a, err)
		}
		i++
	}
}
