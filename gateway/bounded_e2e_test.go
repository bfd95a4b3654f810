package gateway_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwsync/gwsync/gateway"
)

// Issue 11, defect 3: lookups of names nobody registered (any request path
// becomes a name through a gateway) must leave the resolver's state
// bounded: no held service, watcher or goroutine per name, bounded memory,
// and the real services still answered locally. 100,000 random names.
func TestResolver_UnknownNamesBounded(t *testing.T) {
	const lookups = 100_000
	_, r, _, _ := webEnv(t, nil)
	before := measure()
	held := r.Status().Services

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		next, answered, failed atomic.Int64
		slowest                atomic.Int64
		wg                     sync.WaitGroup
	)
	begin := time.Now()
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= lookups && ctx.Err() == nil {
				name := fmt.Sprintf("unknown-%016x", rand.Uint64())
				lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
				t0 := time.Now()
				a, err := r.Resolve(lctx, name)
				lcancel()
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
				switch {
				case err != nil:
					failed.Add(1)
				case !a.Empty():
					t.Errorf("unknown name %s resolved to %d instances", name, len(a.Instances))
				default:
					answered.Add(1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(begin)
	if ctx.Err() != nil {
		t.Fatalf("only %d of %d lookups done in 90s", answered.Load()+failed.Load(), lookups)
	}
	after := measure()
	st := r.Status()
	t.Logf("%d lookups of unknown names in %v (slowest %v): %d answered empty, %d errors",
		lookups, took.Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond), answered.Load(), failed.Load())
	t.Logf("goroutines %d -> %d, heap %.1f -> %.1f MiB, held services %d -> %d",
		before.goroutines, after.goroutines, mib(before.heap), mib(after.heap), held, st.Services)
	if st.Services > held {
		t.Errorf("held services grew from %d to %d: unknown names are held", held, st.Services)
	}
	if after.goroutines > before.goroutines+20 {
		t.Errorf("goroutines grew from %d to %d", before.goroutines, after.goroutines)
	}
	if after.heap > before.heap+32<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB", mib(before.heap), mib(after.heap))
	}
	a, err := r.Resolve(context.Background(), "web")
	if err != nil || a.Source != gateway.SourceLocal || len(a.Instances) != 2 {
		t.Fatalf("web after the flood: answer from %s with %d instances, %v; want 2 from local", a.Source, len(a.Instances), err)
	}
}

type usage struct {
	goroutines int
	heap       uint64
}

// measure settles the heap and counts goroutines, for before/after checks.
func measure() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
