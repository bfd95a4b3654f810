package e2e

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gwsync/gwsync/test/harness"
)

// tokenProxy sits in front of one dedicated cluster and treats each
// replica (told apart by the X-Consul-Token it sends, see haTokenEnv) on
// its own: one replica can be cut off from the cluster while the others
// reach it, and one replica's transactions can be held back and released
// later (a write that left the process before a pause and reaches Consul
// after it). harness.Proxy applies to every client at once; the replicas
// here must share one configuration, so one address.
type tokenProxy struct {
	srv *http.Server
	ln  net.Listener
	rp  *httputil.ReverseProxy

	mu      sync.Mutex
	cut     map[string]bool
	hold    map[string]chan struct{} // closed on release
	held    map[string]int           // txns waiting, by token
	conns   map[net.Conn]string      // last token seen on each connection
	txnsOut map[string]int           // txns forwarded, by token
}

type connKey struct{}

func newTokenProxy(t *testing.T, target string) *tokenProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	u := &url.URL{Scheme: "http", Host: target}
	p := &tokenProxy{ln: ln, cut: map[string]bool{}, hold: map[string]chan struct{}{}, held: map[string]int{},
		conns: map[net.Conn]string{}, txnsOut: map[string]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
		FlushInterval: -1, // blocking queries stream through
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				p.mu.Lock()
				delete(p.conns, c)
				p.mu.Unlock()
			}
		},
	}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		p.mu.Lock()
		for _, ch := range p.hold {
			close(ch)
		}
		p.hold = map[string]chan struct{}{}
		p.mu.Unlock()
		_ = p.srv.Close()
	})
	return p
}

func (p *tokenProxy) Addr() string { return p.ln.Addr().String() }

// SetCut cuts replica token off (its open connections are reset, blocking
// queries included; new ones are reset at once) or lets it through again.
func (p *tokenProxy) SetCut(token string, on bool) {
	p.mu.Lock()
	p.cut[token] = on
	var reset []net.Conn
	for c, tok := range p.conns {
		if on && tok == token {
			reset = append(reset, c)
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		harness.ResetConn(c)
	}
}

// HoldTxns makes token's transactions wait in the proxy, unanswered and
// not yet forwarded, until ReleaseTxns.
func (p *tokenProxy) HoldTxns(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hold[token] == nil {
		p.hold[token] = make(chan struct{})
	}
}

// ReleaseTxns forwards the held transactions and stops holding new ones.
func (p *tokenProxy) ReleaseTxns(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch := p.hold[token]; ch != nil {
		close(ch)
		delete(p.hold, token)
	}
}

// Held is how many of token's transactions wait in the proxy.
func (p *tokenProxy) Held(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[token]
}

// TxnsForwarded is how many of token's transactions reached Consul.
func (p *tokenProxy) TxnsForwarded(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.txnsOut[token]
}

func (p *tokenProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get("X-Consul-Token")
	p.mu.Lock()
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		p.conns[c] = tok
	}
	cut, gate := p.cut[tok], p.hold[tok]
	isTxn := r.URL.Path == "/v1/txn"
	if isTxn && gate != nil {
		p.held[tok]++
	}
	p.mu.Unlock()
	if cut {
		harness.ResetRequest(w, "test proxy: cut")
		return
	}
	if isTxn && gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
		p.mu.Lock()
		p.held[tok]--
		p.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	if isTxn {
		p.mu.Lock()
		p.txnsOut[tok]++
		p.mu.Unlock()
	}
	p.rp.ServeHTTP(w, r)
}
