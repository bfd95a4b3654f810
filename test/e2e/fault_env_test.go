package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/gwsync/gwsync/test/harness"
)

// skipShortFault skips a fault test under -short: each needs real Consul
// servers and runs for tens of seconds.
func skipShortFault(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault suite: real Consul servers, tens of seconds (not in -short)")
	}
}

// fleet is a public catalog for fault tests: services x perService
// instances spread over perService nodes (instance k of every service
// lives on node k), all passing (no checks).
type fleet struct {
	prefix     string
	services   int
	perService int
	port       int // base port; service i listens on port+i
}

func (f fleet) service(i int) string { return fmt.Sprintf("%s%03d", f.prefix, i) }
func (f fleet) node(k int) string    { return fmt.Sprintf("%snode-%02d", f.prefix, k) }
func (f fleet) size() int            { return f.services * f.perService }

// matches reports whether a service belongs to the fleet.
func (f fleet) matches(service string) bool { return strings.HasPrefix(service, f.prefix) }

// keys returns the sampler keys ("dc/node/id") of every instance, sorted.
func (f fleet) keys(dc string) []string {
	var out []string
	for i := range f.services {
		for k := range f.perService {
			out = append(out, fmt.Sprintf("%s/%s/%s-%d", dc, f.node(k), f.service(i), k))
		}
	}
	slices.Sort(out)
	return out
}

// register writes every node and instance into srv with /v1/txn, 128 ops
// a txn (Consul's limit), so a thousand instances take a few requests.
func (f fleet) register(t *testing.T, srv *harness.Server) {
	t.Helper()
	var ops api.TxnOps
	for k := range f.perService {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet,
			Node: api.Node{Node: f.node(k), Address: fmt.Sprintf("10.1.%d.%d", k/250, 1+k%250)}}})
	}
	for i := range f.services {
		for k := range f.perService {
			ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: f.node(k),
				Service: api.AgentService{ID: fmt.Sprintf("%s-%d", f.service(i), k), Service: f.service(i), Port: f.port + i,
					Weights: api.AgentWeights{Passing: 1, Warning: 1}}}})
		}
	}
	c := srv.Client(t)
	for len(ops) > 0 {
		n := min(len(ops), 128)
		ctx, cancel := context.WithTimeout(context.Background(), harness.CallTimeout)
		ok, resp, _, err := c.Txn().Txn(ops[:n], (&api.QueryOptions{}).WithContext(ctx))
		cancel()
		if err != nil || !ok {
			var errs []string
			if resp != nil {
				for _, e := range resp.Errors {
					errs = append(errs, e.What)
				}
			}
			t.Fatalf("register fleet %s in %s: %v %v", f.prefix, srv.DC, err, errs)
		}
		ops = ops[n:]
	}
}

// tapProxy is an HTTP reverse proxy that records every request it
// receives, with its arrival time, and counts those in flight, before
// passing it on: put in front of a harness.Proxy, it sees the requests
// that proxy black-holes (which the proxy itself does not record).
type tapProxy struct {
	ln net.Listener

	mu          sync.Mutex
	reqs        []tapRequest
	inFlight    int
	maxInFlight int
	opInFlight  map[string]int // by opOf
	opMax       map[string]int
}

// tapRequest is one request as it arrived.
type tapRequest struct {
	At     time.Time
	Method string
	Path   string
	Query  url.Values
}

// newTapProxy starts a tap on 127.0.0.1:0 forwarding to target
// ("host:port"); it closes through t.Cleanup.
func newTapProxy(t *testing.T, target string) *tapProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tap: listen: %v", err)
	}
	p := &tapProxy{ln: ln, opInFlight: map[string]int{}, opMax: map[string]int{}}
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: target}) },
		Transport:     transport,
		FlushInterval: -1, // stream: blocking queries pass through
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := tapRequest{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
		op := opOf(req)
		p.mu.Lock()
		p.reqs = append(p.reqs, req)
		p.inFlight++
		p.maxInFlight = max(p.maxInFlight, p.inFlight)
		p.opInFlight[op]++
		p.opMax[op] = max(p.opMax[op], p.opInFlight[op])
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.inFlight--
			p.opInFlight[op]--
			p.mu.Unlock()
		}()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		transport.CloseIdleConnections()
	})
	return p
}

func (p *tapProxy) Addr() string { return p.ln.Addr().String() }

// between returns the requests that arrived in [from, to).
func (p *tapProxy) between(from, to time.Time) []tapRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []tapRequest
	for _, r := range p.reqs {
		if !r.At.Before(from) && r.At.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// resetMaxInFlight restarts the in-flight maxima from the numbers open now.
func (p *tapProxy) resetMaxInFlight() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxInFlight = p.inFlight
	maps.Copy(p.opMax, p.opInFlight)
}

// MaxInFlight is the most requests open at once since the last reset, in
// all and by op (see byOp).
func (p *tapProxy) MaxInFlight() (int, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	byOp := map[string]int{}
	for op, n := range p.opMax {
		if n > 0 {
			byOp[op] = n
		}
	}
	return p.maxInFlight, byOp
}

// opOf names what a request asks: method and path, with a prepared
// query's name folded ("/v1/query/*/execute"), plus "(blocking)" for a
// blocking read.
func opOf(r tapRequest) string {
	op := r.Path
	if strings.HasPrefix(op, "/v1/query/") {
		op = "/v1/query/*/" + op[strings.LastIndex(op, "/")+1:]
	}
	if r.Query.Has("index") {
		op += " (blocking)"
	}
	return r.Method + " " + op
}

// byOp counts requests by opOf.
func byOp(reqs []tapRequest) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		out[opOf(r)]++
	}
	return out
}

// perMinute scales a count over d to a rate per minute.
func perMinute(n int, d time.Duration) float64 { return float64(n) / d.Minutes() }
