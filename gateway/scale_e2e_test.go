package gateway_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/harness"
)

// scaleServices is how many services the scale test holds.
const scaleServices = 2000

// windowEnv names the variable that lengthens the scale test's traffic
// window (a Go duration; default 10s), for a longer measured run.
const windowEnv = "GWSYNC_RESOLVER_WINDOW"

// Issue 11, defect 1 and "done when": a resolver holding 2,000 services
// keeps a handful of connections to its local cluster (one long-lived
// request however many services, plus short reads), answers every lookup
// locally with no failure over the window, and sees a change to one
// service about as fast as a blocking query on that one service would.
// The local client is built like `gwsync gateway`'s (64 connections), and
// the server has Consul's default limits.
func TestResolver_ScaleConnections(t *testing.T) {
	window := 10 * time.Second
	if v := os.Getenv(windowEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", windowEnv, v, err)
		}
		window = d
	}
	e := newEnv(t)
	proxy := harness.NewProxy(t, e.local.HTTPAddr())
	e.localAddr = proxy.Addr()
	names := make([]string, scaleServices)
	insts := make([]inst, scaleServices)
	for i := range insts {
		names[i] = serviceName(i)
		insts[i] = inst{node: fmt.Sprintf("n-%04d", i), service: names[i], port: 20000 + i}
	}
	begin := time.Now()
	e.mirror(t, insts...)
	t.Logf("mirrored %d services in %v", scaleServices, time.Since(begin).Round(time.Millisecond))

	// The controller's marker heartbeat (test options trust a marker for
	// a minute).
	e.mw.heartbeats(t, 10*time.Second)
	r, _ := start(t, e.options(t, nil))
	waitUsable(t, r)
	proxy.Reset()

	begin = time.Now()
	if failed := resolveAll(t, r, names, func(a gateway.Answer) error {
		if a.Source != gateway.SourceLocal || len(a.Instances) != 1 {
			return fmt.Errorf("answer from %s with %d instances, want 1 from local", a.Source, len(a.Instances))
		}
		return nil
	}); failed > 0 {
		t.Fatalf("%d of %d first lookups failed (max %d connections to the local cluster)", failed, scaleServices, proxy.MaxConns())
	}
	t.Logf("first lookups of %d services in %v; %d connections to the local cluster at most",
		scaleServices, time.Since(begin).Round(time.Millisecond), proxy.MaxConns())

	// The window: steady lookups of random services while one service at
	// a time changes.
	lk := startLookups(r, names, 4)
	begin = time.Now()
	lat := measureChanges(t, e, r, insts, 50)
	t.Logf("50 changes, one at a time, in %v", time.Since(begin).Round(time.Millisecond))
	if rest := window - time.Since(lk.began); rest > 0 {
		<-time.After(rest) // the rest of the measured window, not a synchronisation
	}
	lk.stop()
	t.Logf("window %v: %d lookups, %d failed, by source %v", time.Since(lk.began).Round(time.Millisecond), lk.total.Load(), lk.failed.Load(), lk.sources())
	t.Logf("change -> resolver: p50 %v p99 %v; change -> blocking query on the service: p50 %v p99 %v",
		pct(lat.resolver, 50), pct(lat.resolver, 99), pct(lat.raw, 50), pct(lat.raw, 99))
	t.Logf("connections to the local cluster: %d at most, %d open now; %d requests",
		proxy.MaxConns(), proxy.Conns(), proxy.Count(nil))
	if n := lk.failed.Load(); n != 0 {
		t.Errorf("%d lookups failed in the window; first: %v", n, lk.firstErr())
	}
	if src := lk.sources(); len(src) != 1 || src[gateway.SourceLocal.String()] == 0 {
		t.Errorf("answers by source %v; want every one from local", src)
	}
	if n := proxy.MaxConns(); n > 8 {
		t.Errorf("%d connections to the local cluster at once for %d services; want a handful (at most 8)", n, scaleServices)
	}
	// The mirror is written in well under a second; allow a generous
	// margin over the raw blocking query for two shared cores.
	if p50r, p50b := pct(lat.resolver, 50), pct(lat.raw, 50); p50r > p50b+100*time.Millisecond {
		t.Errorf("change latency p50 %v through the resolver, %v for a blocking query on the service", p50r, p50b)
	}
}

func waitUsable(t *testing.T, r *gateway.Resolver) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() error {
		if s := r.Status(); !s.LocalUsable {
			return fmt.Errorf("local not usable: %s", s.LocalReason)
		}
		return nil
	})
}

// resolveAll resolves every name once (32 at a time) and returns how many
// failed check; the first failures are reported.
func resolveAll(t *testing.T, r *gateway.Resolver, names []string, check func(gateway.Answer) error) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		next, failed atomic.Int64
		wg           sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				a, err := r.Resolve(ctx, names[i])
				if err == nil {
					err = check(a)
				}
				if err != nil && failed.Add(1) <= 3 {
					t.Errorf("resolve %s: %v", names[i], err)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load()) + max(0, len(names)-int(next.Load()))
}

// lookups resolves random names in the background and tallies answers.
type lookups struct {
	began         time.Time
	total, failed atomic.Int64
	mu            sync.Mutex
	bySource      map[string]int
	first         error
	done          chan struct{}
	wg            sync.WaitGroup
}

// Each worker resolves 100 names every 10ms (10,000 a second), a busy
// gateway node's rate, leaving the shared cores to the rest of the test.
func startLookups(r *gateway.Resolver, names []string, workers int) *lookups {
	lk := &lookups{began: time.Now(), bySource: map[string]int{}, done: make(chan struct{})}
	for range workers {
		lk.wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				if n%100 == 0 {
					select {
					case <-lk.done:
						return
					case <-tick.C:
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				a, err := r.Resolve(ctx, names[rand.IntN(len(names))])
				cancel()
				lk.total.Add(1)
				lk.mu.Lock()
				if err != nil || a.Empty() {
					lk.failed.Add(1)
					if lk.first == nil {
						lk.first = fmt.Errorf("answer from %s with %d instances: %v", a.Source, len(a.Instances), err)
					}
				}
				lk.bySource[a.Source.String()]++
				lk.mu.Unlock()
			}
		})
	}
	return lk
}

func (lk *lookups) stop() { close(lk.done); lk.wg.Wait() }

func (lk *lookups) sources() map[string]int {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return maps.Clone(lk.bySource)
}

func (lk *lookups) firstErr() error {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return lk.first
}

type latencies struct{ resolver, raw []time.Duration }

// changeSpacing paces the measured changes at 10 a second: well above what
// a mirror sees in practice, below the watch's rate limit (20 rounds a
// second after a burst), which delays only write storms.
const changeSpacing = 100 * time.Millisecond

// measureChanges changes one random service's port n times, the way the
// controller writes it (catalog ops and the change feed in one txn), and
// times how long until the resolver answers with the new port, and until a
// blocking query on that service (another client, through a proxy of its
// own as the resolver's is) wakes for the same write.
func measureChanges(t *testing.T, e *env, r *gateway.Resolver, insts []inst, n int) latencies {
	t.Helper()
	rawProxy := harness.NewProxy(t, e.local.HTTPAddr())
	raw, err := config.Cluster{Address: rawProxy.Addr()}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out latencies
	pace := time.NewTicker(changeSpacing)
	defer pace.Stop()
	for i := range n {
		<-pace.C
		in := insts[rand.IntN(len(insts))]
		in.port = 40000 + i
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, meta, err := raw.Health().Service(in.service, "", true, (&api.QueryOptions{AllowStale: true}).WithContext(ctx))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		blocking := func() bool { return rawProxy.Count(func(q harness.Request) bool { return q.Query.Has("index") }) > i }
		woke := make(chan time.Time, 1)
		go func() {
			_, _, err := raw.Health().Service(in.service, "", true, (&api.QueryOptions{AllowStale: true, WaitIndex: meta.LastIndex, WaitTime: 20 * time.Second}).WithContext(ctx))
			if err != nil {
				t.Errorf("blocking query: %v", err)
			}
			woke <- time.Now()
		}()
		// The blocking query is on its way before the write (if it arrived
		// after, it would return at once: a latency of zero, not a miss).
		if pollUntil(ctx, blocking).IsZero() {
			t.Fatal("blocking query never reached the proxy")
		}
		begin := time.Now()
		e.mw.write(t, map[string][]inst{in.service: {in}}, nil, nil, false)
		seen := pollUntil(ctx, func() bool {
			a, err := r.Resolve(ctx, in.service)
			return err == nil && len(a.Instances) == 1 && a.Instances[0].Port == in.port
		})
		rawAt := <-woke
		cancel()
		if seen.IsZero() {
			t.Fatalf("change %d (%s to port %d) not seen by the resolver within 30s", i, in.service, in.port)
		}
		out.resolver = append(out.resolver, seen.Sub(begin))
		out.raw = append(out.raw, rawAt.Sub(begin))
	}
	return out
}

// pollUntil checks cond every 200µs until it holds (returning when) or
// ctx ends (returning the zero time): a measurement probe, fine-grained
// because it times sub-millisecond propagation.
func pollUntil(ctx context.Context, cond func() bool) time.Time {
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	for {
		if cond() {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-tick.C:
		}
	}
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(10 * time.Microsecond)
}
