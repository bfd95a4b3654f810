package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/test/harness"
)

// Issue 11, defect 5: a local cluster that hangs (accepts connections,
// never answers) is abandoned within 5s with the default probe timings,
// whatever the blocking wait, and no lookup fails meanwhile: held
// services keep their answers, new ones go to the public cluster.
func TestResolver_HungLocalCluster(t *testing.T) {
	e := newEnv(t)
	proxy := harness.NewProxy(t, e.local.HTTPAddr())
	e.localAddr = proxy.Addr()
	web := []inst{{node: "web-01", service: "web", port: backend(t, "web-01")}}
	apiSvc := []inst{{node: "api-01", service: "api", port: backend(t, "api-01")}}
	e.addPublic(t, append(web, apiSvc...)...)
	e.mirror(t, append(web, apiSvc...)...)
	opts := e.options(t, nil)
	// Detection must not depend on the blocking wait (issue: it took the
	// 55s wait); default probe and lookup timings.
	opts.BlockingWait = 30 * time.Second
	opts.ProbeInterval = gateway.DefaultProbeInterval
	opts.LookupTimeout = gateway.DefaultLookupTimeout
	opts.LocalBreaker = gateway.BreakerSettings{}
	r, _ := start(t, opts)
	base := serveGateway(t, r)
	waitSource(t, base+"/web/x", "local", 20*time.Second)
	tr := startTraffic(t, base+"/web/x")
	tr.waitRequests(t, 50)

	proxy.SetBlackHole(true)
	hungAt := time.Now()
	harness.Eventually(t, 15*time.Second, func() error {
		if src := tr.lastSource(); src != "public" {
			return fmt.Errorf("last answer from %q, want public; status %+v", src, r.Status())
		}
		return nil
	})
	took := time.Since(hungAt)
	t.Logf("answers from the public cluster %v after the local cluster hung; status %+v", took.Round(time.Millisecond), r.Status())
	if took > 5*time.Second {
		t.Errorf("switched to the public cluster after %v, want within 5s", took.Round(time.Millisecond))
	}
	// A first lookup while the local cluster hangs is answered too.
	client := &http.Client{Timeout: 10 * time.Second}
	if status, src, body := get(client, base+"/api/x"); status != http.StatusOK || !strings.HasPrefix(body, "backend=api-01") {
		t.Errorf("first lookup of api while the local cluster hangs: %d from %q: %s", status, src, body)
	}
	tr.waitRequests(t, 50)

	proxy.SetBlackHole(false)
	harness.Eventually(t, 20*time.Second, func() error {
		if src := tr.lastSource(); src != "local" {
			return fmt.Errorf("last answer from %q, want local again; status %+v", src, r.Status())
		}
		return nil
	})
	tr.requireNoFailures(t)
}

// Issue 11, defect 4: once the marker is stale the resolver must not
// re-read it in a tight loop; it waits for a change (a heartbeat wakes its
// watch) and probes about once a second.
func TestResolver_StaleMarkerNoBusyPolling(t *testing.T) {
	e := newEnv(t)
	proxy := harness.NewProxy(t, e.local.HTTPAddr())
	e.localAddr = proxy.Addr()
	web := []inst{{node: "web-01", service: "web", port: backend(t, "web-01")}}
	e.addPublic(t, web...)
	e.mirror(t, web...)
	opts := e.options(t, nil)
	opts.MaxMarkerAge = 2 * time.Second
	opts.ProbeInterval = time.Second
	r, _ := start(t, opts)
	url := serveGateway(t, r) + "/web/x"
	waitSource(t, url, "local", 10*time.Second)
	harness.Eventually(t, 10*time.Second, func() error {
		if s := r.Status(); s.LocalUsable {
			return fmt.Errorf("local still usable")
		}
		return nil
	})
	tr := startTraffic(t, url)
	proxy.Reset()
	const window = 4 * time.Second
	<-time.After(window) // the measured window, not a synchronisation
	n := proxy.Count(nil)
	t.Logf("%d requests to the local cluster in %v with a stale marker: %v", n, window, summarize(proxy.Requests()))
	if limit := int(2 * window / time.Second); n > limit {
		t.Errorf("%d requests to the local cluster in %v with a stale marker, want at most %d (a probe a second)", n, window, limit)
	}
	tr.requireNoFailures(t)
}

func summarize(reqs []harness.Request) map[string]int {
	out := map[string]int{}
	for _, q := range reqs {
		k := q.Path
		if q.Query.Has("index") {
			k += " (blocking)"
		}
		out[k]++
	}
	return out
}
