package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// Issue 3 test 7: 1,000 concurrent first lookups of one service make at
// most one call to each cluster. Counting proxies sit in front of both
// clusters and delay every call, so all lookups overlap the first one.
func TestResolver_ConcurrentFirstLookups(t *testing.T) {
	e := newEnv(t)
	localProxy := harness.NewProxy(t, e.local.HTTPAddr())
	publicProxy := harness.NewProxy(t, e.public.HTTPAddr())
	e.localAddr, e.publicAddr = localProxy.Addr(), publicProxy.Addr()
	web := []inst{{node: "web-01", service: "web", port: backend(t, "web-01")}}
	apiSvc := []inst{{node: "api-01", service: "api", port: backend(t, "api-01")}, {node: "api-02", service: "api", port: backend(t, "api-02")}}
	e.addPublic(t, append(web, apiSvc...)...)
	e.mirror(t, web...)

	opts := e.options(t, nil)
	// Watchers in public mode would poll again after this; keep them quiet
	// for the count.
	opts.PublicPollInterval = time.Minute
	opts.LookupTimeout, opts.PublicTimeout = 5*time.Second, 5*time.Second
	// This test is about single flight and the in-flight bound, not the
	// public rate limit (TestResolver_PublicRateLimit).
	opts.PublicRate = 10000
	r, _ := start(t, opts)
	harness.Eventually(t, 10*time.Second, func() error {
		if s := r.Status(); !s.LocalUsable {
			return fmt.Errorf("local not usable: %s", s.LocalReason)
		}
		return nil
	})

	t.Run("synced mirror", func(t *testing.T) {
		localProxy.Reset()
		publicProxy.Reset()
		localProxy.SetDelay(300 * time.Millisecond)
		defer localProxy.SetDelay(0)
		burst(t, r, "web", gateway.SourceLocal, 1)
		// The watcher's blocking queries carry an index; the first lookup
		// does not.
		if n := localProxy.Count(firstReads("/v1/health/service/web")); n != 1 {
			t.Errorf("local cluster got %d first-lookup reads of web, want 1", n)
		}
		if n := publicProxy.Count(nil); n != 0 {
			t.Errorf("public cluster got %d calls, want 0 (the mirror answered)", n)
		}
	})

	t.Run("unsynced mirror", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if _, err := e.local.Client(t).KV().Delete(mirror.MarkerKey(mirror.DefaultKVPrefix, gatewayName), (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 10*time.Second, func() error {
			if s := r.Status(); s.LocalUsable {
				return fmt.Errorf("local still usable after the marker was deleted")
			}
			return nil
		})
		localProxy.Reset()
		publicProxy.Reset()
		publicProxy.SetDelay(300 * time.Millisecond)
		defer publicProxy.SetDelay(0)
		burst(t, r, "api", gateway.SourcePublic, 2)
		if n := publicProxy.Count(harness.PathIs("/v1/query/gwsync-api/execute")); n != 1 {
			t.Errorf("public cluster got %d executions of gwsync-api, want 1", n)
		}
		if n := localProxy.Count(harness.PathIs("/v1/health/service/api")); n != 0 {
			t.Errorf("local cluster got %d reads of api, want 0 (it is not synced)", n)
		}
	})

	t.Run("bounded public calls", func(t *testing.T) {
		// The marker is still deleted: every distinct service goes to the
		// public cluster, through at most MaxPublicInFlight calls at once.
		publicProxy.Reset()
		publicProxy.SetDelay(100 * time.Millisecond)
		defer publicProxy.SetDelay(0)
		const services = 40
		var wg sync.WaitGroup
		for i := range services {
			for range 25 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					if _, err := r.Resolve(ctx, fmt.Sprintf("svc-%d", i)); err != nil {
						t.Errorf("resolve: %v", err)
					}
				}()
			}
		}
		wg.Wait()
		if n := publicProxy.Count(nil); n != services {
			t.Errorf("public cluster got %d calls for %d services, want one each", n, services)
		}
		if n := publicProxy.MaxInFlight(); n > gateway.DefaultMaxPublicInFlight {
			t.Errorf("%d public calls in flight at once, want at most %d", n, gateway.DefaultMaxPublicInFlight)
		}
		t.Logf("at most %d public calls in flight for %d concurrent lookups", publicProxy.MaxInFlight(), services*25)
	})
}

// burst runs 1,000 first lookups of service at once and checks each answer.
func burst(t *testing.T, r *gateway.Resolver, service string, want gateway.Source, instances int) {
	t.Helper()
	const n = 1000
	var (
		wg    sync.WaitGroup
		ready = make(chan struct{})
		errs  = make(chan error, n)
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			a, err := r.Resolve(ctx, service)
			if err == nil && (a.Source != want || len(a.Instances) != instances) {
				err = fmt.Errorf("answer from %s with %d instances, want %s with %d", a.Source, len(a.Instances), want, instances)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	begin := time.Now()
	close(ready)
	wg.Wait()
	close(errs)
	t.Logf("%d concurrent first lookups of %s answered in %v", n, service, time.Since(begin).Round(time.Millisecond))
	failed := 0
	for err := range errs {
		if failed == 0 {
			t.Errorf("lookup failed: %v", err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d lookups failed", failed, n)
	}
}

// firstReads matches non-blocking reads of path (no index, or index 0).
func firstReads(path string) func(harness.Request) bool {
	return func(r harness.Request) bool {
		idx := r.Query.Get("index")
		return r.Path == path && (idx == "" || idx == "0")
	}
}
