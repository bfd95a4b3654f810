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
	const bound, perDC = 3, 10
	var mu sync.Mutex
	inFlight, served, most := map[string]int{}, map[string]int{}, map[string]int{}
	token := make(chan struct{}) // each one lets one held call answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dc := r.URL.Query().Get("dc")
		mu.Lock()
		inFlight[dc]++
		most[dc] = max(most[dc], inFlight[dc])
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight[dc]--
			mu.Unlock()
		}()
		select {
		case <-token:
		case <-r.Context().Done(): // the test failed and stops its callers
			return
		}
		mu.Lock()
		served[dc]++
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
	p := NewPublic(client, config.Public{Cluster: config.Cluster{Timeout: 10 * time.Second}, MaxInFlightPerDC: bound},
		config.Query{Prefix: "gwsync-"}, hclog.NewNullLogger(), syncer.NewMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range 2 * perDC {
		dc := "dc1"
		if i%2 == 1 {
			dc = "dc2"
		}
		wg.Go(func() { _, _ = p.Execute(ctx, dc, "web") })
	}
	// Let the calls answer one at a time: after each, every DC holds
	// exactly its bound in flight (or what is left): a call past the
	// bound, or a slot not handed on, fails the wait.
	for range 2 * perDC {
		harness.Eventually(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			for _, dc := range []string{"dc1", "dc2"} {
				if want := min(bound, perDC-served[dc]); inFlight[dc] != want || most[dc] > bound {
					return fmt.Errorf("%s: %d in flight (most %d, %d answered), want %d", dc, inFlight[dc], most[dc], served[dc], want)
				}
			}
			return nil
		})
		token <- struct{}{}
	}
	if most["dc1"] != bound || most["dc2"] != bound {
		t.Fatalf("most calls in flight at once: %v, want %d per DC", most, bound)
	}
}
