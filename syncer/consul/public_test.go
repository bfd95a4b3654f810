package consul

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/test/harness"
)

// The public cluster never sees more than max_in_flight_per_dc calls to
// one DC at once, however many callers there are; other DCs have their own
// slots. (The fault suite can only bound it from the far side of a proxy,
// which counts a call whose deadline passed until it sees the connection
// close.)
func TestPublic_InFlightBoundPerDC(t *testing.T) {
	var mu sync.Mutex
	inFlight, most := map[string]int{}, map[string]int{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dc := r.URL.Query().Get("dc")
		mu.Lock()
		inFlight[dc]++
		most[dc] = max(most[dc], inFlight[dc])
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight[dc]--
		mu.Unlock()
		w.Header().Set("X-Consul-Index", "1")
		w.Header().Set("X-Consul-LastContact", "0")
		w.Header().Set("X-Consul-KnownLeader", "true")
		_, _ = w.Write([]byte(`{"Service":"web","Nodes":[],"Datacenter":"dc1"}`))
	}))
	defer srv.Close()
	client, err := api.NewClient(&api.Config{Address: srv.Listener.Addr().String(), Transport: &http.Transport{MaxConnsPerHost: 100}})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPublic(client, config.Public{Cluster: config.Cluster{Timeout: 10 * time.Second}, MaxInFlightPerDC: 3},
		config.Query{Prefix: "gwsync-"}, hclog.NewNullLogger(), syncer.NewMetrics(prometheus.NewRegistry()))
	var wg sync.WaitGroup
	for i := range 20 {
		dc := "dc1"
		if i%2 == 1 {
			dc = "dc2"
		}
		wg.Go(func() { _, _ = p.Execute(context.Background(), dc, "web") })
	}
	harness.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if inFlight["dc1"] < 3 || inFlight["dc2"] < 3 {
			return fmt.Errorf("in flight %v, want the 3 slots of each DC taken", inFlight)
		}
		return nil
	})
	close(release)
	wg.Wait()
	if most["dc1"] != 3 || most["dc2"] != 3 {
		t.Fatalf("most calls in flight at once: %v, want 3 per DC", most)
	}
}
