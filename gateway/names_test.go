package gateway

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// Issue 11 defect 6: internal single-flight keys shared their namespace
// with service names, so a lookup of "\x00marker" (the path /%00marker/
// through the reference gateway) joined the resolver's own marker read
// during start-up and panicked on its nil result. Every lookup here must
// return (an answer or an error), in time, without panicking.
func TestResolver_InternalKeyNames(t *testing.T) {
	e := newFakeEnv(t)
	e.mirror.set(t, "web", []int{80}, true)
	e.public.setAnswer("gwsync-web", publicEntries("web", 80))
	// Every read is slow, so lookups overlap the resolver's start-up.
	e.local.setDelay("kv", 300*time.Millisecond)
	e.local.setDelay("health", 300*time.Millisecond)
	r := e.run(t, e.options())

	names := []string{"web", "\x00marker", "%00marker", "marker", "\x00", "\x00sync"}
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			// Lookups end on the resolver's own deadlines (500ms per
			// cluster here), never on the caller's 5s.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			begin := time.Now()
			a, err := r.Resolve(ctx, name)
			took := time.Since(begin)
			switch {
			case took > 3*time.Second:
				t.Errorf("Resolve(%q) took %v (%v): stuck", name, took.Round(time.Millisecond), err)
			case err == nil && a.Service != name:
				t.Errorf("Resolve(%q) answered for %q", name, a.Service)
			case name == "web" && (err != nil || len(a.Instances) != 1):
				t.Errorf("Resolve(web) = %d instances, %v; want 1", len(a.Instances), err)
			}
		})
	}
	wg.Wait()
}

// FuzzResolve_Names: no service name can panic or hang the resolver. The
// clusters are fakes (a synced mirror holding "web", a public cluster that
// knows "web" and "api"); every lookup must return within its deadline,
// and an answer must be for the name asked.
func FuzzResolve_Names(f *testing.F) {
	for _, s := range []string{"web", "api", "", "\x00marker", "%00marker", "a/b", "/", "..", ".", "a/../b", "web/..",
		strings.Repeat("x", 70000), "\xff\xfe", "svc with spaces", "?x=1", "#frag", "web\x00", "\x00sync"} {
		f.Add(s)
	}
	e := newFakeEnv(f)
	e.mirror.set(f, "web", []int{80, 81}, true)
	e.public.setAnswer("gwsync-web", publicEntries("web", 80, 81))
	e.public.setAnswer("gwsync-api", publicEntries("api", 90))
	r := e.run(f, e.options())
	f.Fuzz(func(t *testing.T, name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			a, err := r.Resolve(ctx, name)
			if err == nil && a.Service != name {
				t.Errorf("Resolve(%q) answered for %q", name, a.Service)
			}
		}()
		select {
		case <-done:
		case <-time.After(4 * time.Second):
			t.Fatalf("Resolve(%q) did not return within its 3s deadline", name)
		}
	})
}
