package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/config"
)

// proxyClient is an API client that talks to the server through p.
func proxyClient(t *testing.T, p *Proxy) *api.Client {
	t.Helper()
	c, err := config.Cluster{Address: p.Addr(), Scheme: "http"}.NewClient(config.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProxy counts requests by path, delays them, honours cancellation,
// tracks concurrency and plays dead.
func TestProxy(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "gw-proxy")
	p := NewProxy(t, s.HTTPAddr())
	c := proxyClient(t, p)

	for range 3 {
		if _, _, err := c.Catalog().Services((&api.QueryOptions{AllowStale: true}).WithContext(ctxT(t))); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Count(PathIs("/v1/catalog/services")); got != 3 {
		t.Fatalf("catalog/services count = %d, want 3", got)
	}
	if got := p.Count(PathIs("/v1/status/leader")); got != 2 {
		t.Fatalf("status/leader count = %d, want 2", got)
	}
	if got := p.Count(nil); got != 5 {
		t.Fatalf("total count = %d, want 5", got)
	}
	if r := p.Requests()[0]; r.Method != http.MethodGet || !r.Query.Has("stale") {
		t.Fatalf("first request = %+v, want a GET with ?stale", r)
	}
	p.Reset()
	if got := p.Count(nil); got != 0 {
		t.Fatalf("count after Reset = %d", got)
	}

	const delay = 400 * time.Millisecond
	p.SetDelay(delay)
	var wg sync.WaitGroup
	took := make([]time.Duration, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t)))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("delayed request %d: %v", i, errs[i])
		}
		if took[i] < delay {
			t.Fatalf("delayed request %d took %s, want >= %s", i, took[i], delay)
		}
	}
	t.Logf("measured: 4 concurrent requests with %s delay took %v", delay, took)
	if got := p.MaxInFlight(); got != 4 {
		t.Fatalf("MaxInFlight = %d, want 4", got)
	}

	p.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("canceled request during delay: err %v after %s; want an error well before the 5s delay", err, time.Since(start))
	}
	p.SetDelay(0)

	// A blocking query in flight is cut when the proxy goes down.
	_, meta, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := c.Catalog().Services((&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 30 * time.Second}).WithContext(context.Background()))
		blocked <- err
	}()
	Eventually(t, 5*time.Second, func() error {
		if n := p.Count(func(r Request) bool { return r.Query.Has("index") }); n != 1 {
			return fmt.Errorf("%d blocking queries seen by the proxy, want 1", n)
		}
		return nil
	})
	p.SetDown(true)
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("blocking query through a proxy set down returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query still running 5s after SetDown(true)")
	}
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err == nil {
		t.Fatal("request through a down proxy succeeded")
	}
	p.SetDown(false)
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
		t.Fatalf("request after SetDown(false): %v", err)
	}
}

// TestProxy_BlackHoleAndConns: a black-holed target accepts requests and
// never answers (new ones and blocking queries in flight), so only a
// client's deadline ends them; the proxy counts client connections.
func TestProxy_BlackHoleAndConns(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "gw-hole")
	p := NewProxy(t, s.HTTPAddr())
	c := proxyClient(t, p)

	_, meta, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctxT(t)))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("Conns = %d after one request, want 1 (the kept-alive connection)", n)
	}
	blocked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, _, err := c.Catalog().Services((&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Second}).WithContext(ctx))
		blocked <- err
	}()
	Eventually(t, 5*time.Second, func() error {
		if n := p.Count(func(r Request) bool { return r.Query.Has("index") }); n != 1 {
			return fmt.Errorf("%d blocking queries seen by the proxy, want 1", n)
		}
		return nil
	})
	p.SetBlackHole(true)
	// The server ends the 1s blocking query on time; the proxy withholds the
	// answer, so the client's 3s deadline ends it.
	start := time.Now()
	if err := <-blocked; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocking query through a black hole: %v, want the client's deadline", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("new request through a black hole: %v, want the client's deadline", err)
	}
	t.Logf("measured: blocking query held %v past the server's answer", time.Since(start).Round(time.Millisecond))
	p.SetBlackHole(false)
	if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
		t.Fatalf("request after SetBlackHole(false): %v", err)
	}

	p.Reset()
	var wg sync.WaitGroup
	p.SetDelay(200 * time.Millisecond)
	for range 5 {
		wg.Go(func() {
			if _, err := c.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctxT(t))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := p.MaxConns(); n != 5 {
		t.Fatalf("MaxConns = %d for 5 concurrent requests, want 5", n)
	}
}
