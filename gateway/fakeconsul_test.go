package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// fakeConsul is a small in-memory stand-in for the few Consul HTTP
// endpoints the resolver calls (KV get and recursive list with blocking,
// health/service, prepared-query execute, status/leader), for fast unit and
// fuzz tests. Consul's own behaviour is tested against real servers in the
// e2e tests; this fake only has to be plausible and controllable.
type fakeConsul struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	index    uint64
	kv       map[string]*api.KVPair
	services map[string][]*api.ServiceEntry
	// answers are prepared-query answers by query name; a missing one is
	// an empty answer (a template matches every name).
	answers map[string][]api.ServiceEntry
	changed chan struct{} // closed and replaced on every write
	delay   map[string]time.Duration
	hang    bool
	calls   map[string]int // by endpoint kind: kv, health, query, status
	paths   map[string]int // by URL path
}

func newFakeConsul(t testing.TB) *fakeConsul {
	f := &fakeConsul{
		t: t, index: 1, kv: map[string]*api.KVPair{}, services: map[string][]*api.ServiceEntry{},
		answers: map[string][]api.ServiceEntry{}, changed: make(chan struct{}), delay: map[string]time.Duration{}, calls: map[string]int{},
		paths: map[string]int{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// client returns an API client for the fake.
func (f *fakeConsul) client() *api.Client {
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(f.srv.URL, "http://"), HttpClient: f.srv.Client()})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fakeConsul) bump() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) putKV(key string, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bump()
	f.kv[key] = &api.KVPair{Key: key, Value: value, ModifyIndex: f.index, CreateIndex: f.index}
}

func (f *fakeConsul) deleteKV(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bump()
	delete(f.kv, key)
}

func (f *fakeConsul) setService(name string, entries []*api.ServiceEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bump()
	f.services[name] = entries
}

func (f *fakeConsul) setAnswer(query string, entries []api.ServiceEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[query] = entries
}

// setDelay holds every request of one kind (kv, health, query, status).
func (f *fakeConsul) setDelay(kind string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay[kind] = d
}

// setHang makes every request wait until its client gives up.
func (f *fakeConsul) setHang(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = on
}

func (f *fakeConsul) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kind]
}

// pathCount is how many requests asked for path.
func (f *fakeConsul) pathCount(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paths[path]
}

func (f *fakeConsul) serve(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/v1/kv/"):
		kind = "kv"
	case strings.HasPrefix(p, "/v1/health/service/"):
		kind = "health"
	case strings.HasPrefix(p, "/v1/query/"):
		kind = "query"
	case strings.HasPrefix(p, "/v1/status/"):
		kind = "status"
	}
	f.mu.Lock()
	f.calls[kind]++
	f.paths[r.URL.Path]++
	hang, delay := f.hang, f.delay[kind]
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	f.block(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(f.index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	switch kind {
	case "kv":
		f.serveKV(w, r)
	case "health":
		name := strings.TrimPrefix(r.URL.Path, "/v1/health/service/")
		writeJSON(w, orEmpty(f.services[name]))
	case "query":
		name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/query/"), "/execute")
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, api.PreparedQueryExecuteResponse{Service: name, Datacenter: "dc1", Nodes: orEmpty(f.answers[name])})
	case "status":
		writeJSON(w, "127.0.0.1:8300")
	default:
		http.NotFound(w, r)
	}
}

// block implements blocking queries: wait until the index passes the
// requested one, the wait ends, or the client gives up.
func (f *fakeConsul) block(r *http.Request) {
	idx, err := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if err != nil || idx == 0 {
		return
	}
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || wait <= 0 {
		wait = 5 * time.Minute
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		cur, ch := f.index, f.changed
		f.mu.Unlock()
		if cur > idx {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *fakeConsul) serveKV(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/v1/kv/")
	var out []*api.KVPair
	if r.URL.Query().Has("recurse") {
		for k, p := range f.kv {
			if strings.HasPrefix(k, key) {
				out = append(out, p)
			}
		}
		slices.SortFunc(out, func(a, b *api.KVPair) int { return strings.Compare(a.Key, b.Key) })
	} else if p := f.kv[key]; p != nil {
		out = append(out, p)
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
