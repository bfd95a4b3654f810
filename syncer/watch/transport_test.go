package watch

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulStub answers like Consul's HTTP API for the two lists, gzip
// compressing when asked, and records each request's query.
type consulStub struct {
	mu      sync.Mutex
	queries []url.Values
	gzipped []bool
	body    map[string]any // by path
	index   string
}

func (s *consulStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.queries = append(s.queries, r.URL.Query())
	zip := r.Header.Get("Accept-Encoding") == "gzip"
	s.gzipped = append(s.gzipped, zip)
	body, ok := s.body[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such endpoint", http.StatusNotFound)
		return
	}
	b, _ := json.Marshal(body)
	w.Header().Set("X-Consul-Index", s.index)
	w.Header().Set("X-Consul-LastContact", "0")
	w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
	if zip {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return
	}
	_, _ = w.Write(b)
}

func stubClient(t *testing.T, stub *consulStub) (*api.Client, *CountingTransport) {
	t.Helper()
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	ct := NewCountingTransport(&http.Transport{Proxy: nil})
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(srv.URL, "http://"), HttpClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	return c, ct
}

func TestConsulSource_HealthChecks(t *testing.T) {
	checks := []api.HealthCheck{
		{Node: "n1", CheckID: "service:web", Status: "passing", Output: strings.Repeat("HTTP GET http://10.0.0.1/health: 200 OK ", 20), ServiceID: "web-1", ServiceName: "web", ServiceTags: []string{"v1"}},
		{Node: "n1", CheckID: "serfHealth", Status: "passing", Output: "Agent alive and reachable"},
	}
	stub := &consulStub{body: map[string]any{"/v1/health/state/any": checks}, index: "42"}
	client, ct := stubClient(t, stub)
	src := NewConsulSource(client, true)

	got, m, err := src.Checks(context.Background(), stateAny, Query{DC: "dc2", Index: 7, Wait: 90 * time.Second})
	if err != nil {
		t.Fatalf("HealthChecks: %v", err)
	}
	want := []Check{{Node: "n1", CheckID: "service:web", Status: "passing", ServiceID: "web-1", ServiceName: "web"}, {Node: "n1", CheckID: "serfHealth", Status: "passing"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("checks = %+v, want %+v", got, want)
	}
	if m.Index != 42 || !m.Filtered {
		t.Errorf("meta = %+v, want index 42, filtered", m)
	}
	raw, _ := json.Marshal(checks)
	if m.DecodedBytes != int64(len(raw)) {
		t.Errorf("decoded bytes = %d, want %d (the JSON body)", m.DecodedBytes, len(raw))
	}
	if m.WireBytes <= 0 || m.WireBytes >= m.DecodedBytes {
		t.Errorf("wire bytes = %d, want a compressed size below %d", m.WireBytes, m.DecodedBytes)
	}
	if tot := ct.Total(); tot.Wire() != m.WireBytes || tot.Decoded() != m.DecodedBytes {
		t.Errorf("transport total = %d/%d, want %d/%d", tot.Wire(), tot.Decoded(), m.WireBytes, m.DecodedBytes)
	}
	q := stub.queries[0]
	if q.Get("dc") != "dc2" || q.Get("index") != "7" || q.Get("wait") != "90000ms" || !q.Has("stale") {
		t.Errorf("query = %v, want dc=dc2 index=7 wait=90000ms stale", q)
	}
	if !stub.gzipped[0] {
		t.Error("the request did not ask for gzip")
	}
}

func TestConsulSource_PlainReadSendsNoIndexOrWait(t *testing.T) {
	stub := &consulStub{body: map[string]any{"/v1/catalog/services": map[string][]string{"web": {"b", "a"}}}, index: "9"}
	client, _ := stubClient(t, stub)
	got, m, err := NewConsulSource(client, false).CatalogServices(context.Background(), Query{DC: "dc1", Wait: time.Minute})
	if err != nil {
		t.Fatalf("CatalogServices: %v", err)
	}
	if len(got["web"]) != 2 || m.Index != 9 {
		t.Errorf("services = %v, meta = %+v", got, m)
	}
	if q := stub.queries[0]; q.Has("index") || q.Has("wait") || q.Has("stale") {
		t.Errorf("plain read sent %v", q)
	}
}

func TestConsulSource_ErrorsSayWhat(t *testing.T) {
	stub := &consulStub{body: map[string]any{}, index: "1"}
	client, _ := stubClient(t, stub)
	_, _, err := NewConsulSource(client, true).Checks(context.Background(), stateCritical, Query{DC: "dc3"})
	if err == nil || !strings.Contains(err.Error(), "/v1/health/state/critical in dc3") {
		t.Fatalf("error = %v, want one naming the path and DC", err)
	}
}

func TestCountingTransport(t *testing.T) {
	payload := bytes.Repeat([]byte("consul "), 1000)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(payload)
	_ = zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/bad":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write([]byte("not gzip"))
		case r.Header.Get("Accept-Encoding") == "gzip":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(zipped.Bytes())
		default:
			_, _ = w.Write(payload)
		}
	}))
	defer srv.Close()
	ct := NewCountingTransport(&http.Transport{Proxy: nil})
	client := &http.Client{Transport: ct}

	get := func(path, acceptEncoding string) (*Counter, []byte, error) {
		var c Counter
		req, _ := http.NewRequestWithContext(WithCounter(context.Background(), &c), http.MethodGet, srv.URL+path, nil)
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return &c, b, err
	}

	c, body, err := get("/", "")
	if err != nil || !bytes.Equal(body, payload) {
		t.Fatalf("gzip round trip: err %v, body %d bytes, want %d", err, len(body), len(payload))
	}
	if c.Wire() != int64(zipped.Len()) || c.Decoded() != int64(len(payload)) {
		t.Errorf("gzip counts wire/decoded = %d/%d, want %d/%d", c.Wire(), c.Decoded(), zipped.Len(), len(payload))
	}

	c, body, err = get("/", "identity")
	if err != nil || !bytes.Equal(body, payload) {
		t.Fatalf("identity: err %v", err)
	}
	if c.Wire() != int64(len(payload)) || c.Decoded() != int64(len(payload)) {
		t.Errorf("identity counts = %d/%d, want %d both", c.Wire(), c.Decoded(), len(payload))
	}

	if _, _, err = get("/bad", ""); err == nil {
		t.Error("a body that is not gzip read without error")
	}
	if tot := ct.Total(); tot.Decoded() < 2*int64(len(payload)) {
		t.Errorf("total decoded = %d, want at least %d", tot.Decoded(), 2*len(payload))
	}
}
