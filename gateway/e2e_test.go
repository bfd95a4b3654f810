package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/mirror"
	"github.com/gwsync/gwsync/test/harness"
)

// webEnv is an env with two "web" backends in the public cluster and in
// the mirror, and a resolver behind the reference gateway answering from
// the local cluster.
func webEnv(t *testing.T, tweak func(*gateway.Options)) (e *env, r *gateway.Resolver, url string, web []inst) {
	t.Helper()
	e = newEnv(t)
	web = []inst{
		{node: "web-01", service: "web", port: backend(t, "web-01")},
		{node: "web-02", service: "web", port: backend(t, "web-02")},
	}
	e.addPublic(t, web...)
	e.mirror(t, web...)
	opts := e.options(t, nil)
	if tweak != nil {
		tweak(&opts)
	}
	r, _ = start(t, opts)
	url = serveGateway(t, r) + "/web/hello"
	waitSource(t, url, "local", 20*time.Second)
	return e, r, url, web
}

// Issue 3 test 1: the dedicated cluster is killed under steady traffic.
func TestResolver_LocalClusterKilled(t *testing.T) {
	var reg *prometheus.Registry
	e, r, url, web := webEnv(t, func(o *gateway.Options) { reg = o.Registerer.(*prometheus.Registry) })
	tr := startTraffic(t, url)
	tr.waitRequests(t, 50)

	killedAt := time.Now()
	e.local.Stop(t)
	// Three failures open the local breaker (backoff 50ms..400ms), then
	// watchers switch to the public cluster at once.
	harness.Eventually(t, 10*time.Second, func() error {
		if s := r.Status(); s.LocalBreaker != "open" || tr.lastSource() != "public" {
			return fmt.Errorf("breaker %s, last answer from %q", s.LocalBreaker, tr.lastSource())
		}
		return nil
	})
	t.Logf("answers from the public cluster %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if got := metricValue(t, reg, "gwsync_resolver_breaker_state", map[string]string{"cluster": "local"}); got != 2 {
		t.Errorf("breaker_state{cluster=local} = %v, want 2 (open)", got)
	}
	tr.waitRequests(t, 100)

	// The cluster returns (a dev server comes back empty) and the syncer
	// fills it again: answers go back to local, the breaker closes.
	e.restartLocal(t)
	e.mirror(t, web...)
	backAt := time.Now()
	harness.Eventually(t, 15*time.Second, func() error {
		if s := r.Status(); s.LocalBreaker != "closed" || !s.LocalUsable || tr.lastSource() != "local" {
			return fmt.Errorf("breaker %s, usable %v, last answer from %q", s.LocalBreaker, s.LocalUsable, tr.lastSource())
		}
		return nil
	})
	t.Logf("answers from the local cluster %v after it was synced again", time.Since(backAt).Round(time.Millisecond))
	tr.waitRequests(t, 50)
	tr.requireNoFailures(t)
	if got := metricValue(t, reg, "gwsync_resolver_lookups_total", map[string]string{"source": "public", "result": "ok"}); got == 0 {
		t.Error("lookups_total{source=public,result=ok} = 0 after answers from the public cluster")
	}
	if tr.sources["public"] == 0 || tr.sources["local"] == 0 {
		t.Fatalf("answers by source %v: want both local and public", tr.sources)
	}
}

// Issue 3 test 2: the dedicated cluster restarts empty (no marker, no
// mirror). The local breaker is made insensitive here, so what protects the
// traffic is the missing marker and the public confirmation of an empty
// mirror, not the breaker.
func TestResolver_LocalClusterRestartedEmpty(t *testing.T) {
	e, r, url, web := webEnv(t, func(o *gateway.Options) { o.LocalBreaker.ConsecutiveFailures = 1 << 20 })
	tr := startTraffic(t, url)
	tr.waitRequests(t, 50)

	e.restartLocal(t)
	harness.Eventually(t, 10*time.Second, func() error {
		if s := r.Status(); s.LocalUsable || tr.lastSource() != "public" {
			return fmt.Errorf("local usable %v (%s), last answer from %q", s.LocalUsable, s.LocalReason, tr.lastSource())
		}
		return nil
	})
	if s := r.Status(); s.LocalReason != "sync marker missing" {
		t.Errorf("local not usable because %q, want the missing marker", s.LocalReason)
	}
	tr.waitRequests(t, 200)

	e.mirror(t, web...)
	harness.Eventually(t, 10*time.Second, func() error {
		if tr.lastSource() != "local" {
			return fmt.Errorf("last answer from %q", tr.lastSource())
		}
		return nil
	})
	tr.requireNoFailures(t)
}

// Issue 3 test 3: both clusters down; answers come from memory.
func TestResolver_BothClustersDown(t *testing.T) {
	e, _, url, _ := webEnv(t, nil)
	tr := startTraffic(t, url)
	tr.waitRequests(t, 50)

	e.local.Stop(t)
	e.public.Stop(t)
	harness.Eventually(t, 10*time.Second, func() error {
		if tr.lastSource() != "memory" {
			return fmt.Errorf("last answer from %q", tr.lastSource())
		}
		return nil
	})
	tr.waitRequests(t, 300)
	tr.requireNoFailures(t)
}

// Issue 3 test 4: a gateway restarted while both clusters are down resolves
// from its disk snapshot.
func TestResolver_RestartFromSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolver.snapshot")
	e, _, _, _ := webEnv(t, nil)
	first, stopFirst := start(t, withSnapshot(e.options(t, nil), path))
	if a, err := first.Resolve(context.Background(), "web"); err != nil || len(a.Instances) != 2 {
		t.Fatalf("first resolver: %+v, %v", a, err)
	}
	stopFirst() // writes the final snapshot
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot after the resolver stopped: %v", err)
	}

	e.local.Stop(t)
	e.public.Stop(t)
	second, _ := start(t, withSnapshot(e.options(t, nil), path))
	url := serveGateway(t, second) + "/web/again"
	begin := time.Now()
	status, src, body := get(&http.Client{Timeout: 10 * time.Second}, url)
	if status != http.StatusOK || src != "snapshot" || !strings.HasPrefix(body, "backend=web-0") {
		t.Fatalf("through the restarted gateway: status %d source %q body %q; want 200 from the snapshot", status, src, body)
	}
	t.Logf("first lookup with both clusters down answered from the snapshot in %v", time.Since(begin).Round(time.Millisecond))
	a, err := second.Resolve(context.Background(), "web")
	if err != nil || a.Source != gateway.SourceSnapshot || len(a.Instances) != 2 || a.Age <= 0 {
		t.Fatalf("Resolve: %+v, %v; want 2 instances from the snapshot with an age", a, err)
	}
	if _, err := second.Resolve(context.Background(), "never-seen"); err == nil {
		t.Fatal("a service in no cluster and no snapshot resolved without error")
	}
}

// Issue 3 test 5: a corrupt or foreign snapshot is logged and ignored.
func TestResolver_CorruptSnapshot(t *testing.T) {
	e, _, _, _ := webEnv(t, nil)
	tests := []struct {
		name    string
		content string
	}{
		{name: "garbage", content: "\x00\xffnot a snapshot at all"},
		{name: "foreign json", content: `{"some":"other tool's state"}`},
		{name: "truncated", content: `{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge","services":{"web":{"instances":[{"addr`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolver.snapshot")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			logs := newTestLog(t)
			r, stop := start(t, withSnapshot(e.options(t, logs), path))
			a, err := r.Resolve(context.Background(), "web")
			if err != nil || a.Source != gateway.SourceLocal || len(a.Instances) != 2 {
				t.Fatalf("Resolve: %+v, %v; want a clean start answering from local", a, err)
			}
			if !strings.Contains(logs.String(), "snapshot unusable") {
				t.Fatalf("no error logged for the corrupt snapshot; logs:\n%s", logs)
			}
			stop()
			b, err := os.ReadFile(path)
			if err != nil || !strings.HasPrefix(string(b), `{"magic":"gwsync-resolver-snapshot"`) {
				t.Fatalf("snapshot not replaced by a valid one: %q, %v", b, err)
			}
		})
	}
}

// Issue 3 test 6: the truth is known (public and mirror healthy, marker
// fresh): a service deregistered everywhere resolves to no instances. On
// the way, a mirror that lost the instances first is not believed while the
// public cluster still has them.
func TestResolver_DeregisteredEverywhere(t *testing.T) {
	e, r, url, web := webEnv(t, nil)
	e.unmirror(t, web...)
	harness.Eventually(t, 10*time.Second, func() error {
		a, err := r.Resolve(context.Background(), "web")
		if err != nil || a.Source != gateway.SourcePublic || len(a.Instances) != 2 {
			return fmt.Errorf("answer from %s with %d instances, %v; want 2 from public", a.Source, len(a.Instances), err)
		}
		return nil
	})
	for _, in := range web {
		e.public.DeregisterNode(t, in.node)
	}
	harness.Eventually(t, 10*time.Second, func() error {
		a, err := r.Resolve(context.Background(), "web")
		if err != nil || !a.Empty() || a.Source != gateway.SourceLocal {
			return fmt.Errorf("answer from %s with %d instances, %v; want none, from local", a.Source, len(a.Instances), err)
		}
		return nil
	})
	status, src, body := get(http.DefaultClient, url)
	if status != http.StatusServiceUnavailable || src != "local" || !strings.Contains(body, "no healthy instances") {
		t.Fatalf("through the gateway: %d %q %q; want 503 saying there are no instances", status, src, body)
	}
}

func withSnapshot(o gateway.Options, path string) gateway.Options {
	o.SnapshotPath = path
	return o
}

// metricValue reads one gauge or counter series from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// A marker that stops being refreshed (the syncer died, the cluster is
// fine) goes stale by the clock alone, without any KV change: the resolver
// falls back, and comes back when a fresh marker arrives.
func TestResolver_MarkerGoesStale(t *testing.T) {
	e, r, url, _ := webEnv(t, func(o *gateway.Options) { o.MaxMarkerAge = 3 * time.Second })
	tr := startTraffic(t, url)
	harness.Eventually(t, 15*time.Second, func() error {
		if s := r.Status(); s.LocalUsable || tr.lastSource() != "public" {
			return fmt.Errorf("local usable %v (%s), last answer from %q", s.LocalUsable, s.LocalReason, tr.lastSource())
		}
		return nil
	})
	if s := r.Status(); !strings.Contains(s.LocalReason, "older than 3s") || s.LocalBreaker != "closed" {
		t.Errorf("status %+v; want a stale marker with a closed breaker", s)
	}
	// A controller's heartbeat (checked_at) vouches for the mirror even
	// though its last complete sync (synced_at) is old.
	old := time.Now().Add(-time.Hour).UTC()
	m := mirror.Marker{Version: mirror.MarkerVersion, Gateway: gatewayName, Generation: 99, SyncedAt: old, CheckedAt: time.Now().UTC()}
	e.mw.putMarker(t, m)
	harness.Eventually(t, 10*time.Second, func() error {
		if tr.lastSource() != "local" {
			return fmt.Errorf("last answer from %q", tr.lastSource())
		}
		return nil
	})
	tr.requireNoFailures(t)
}
