package harness

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

// Request is what a Proxy records of one request it forwarded.
type Request struct {
	Method string
	Path   string
	Query  url.Values
}

// Proxy is an HTTP reverse proxy in front of a Consul server (or anything
// else): it records every request, can delay each one (a slow WAN), can
// play dead (connections reset) or hang (connections accepted, never
// answered), and tracks how many requests and client connections were open
// at once. Responses are streamed (flushed as they arrive), so blocking
// queries pass through. All methods are safe for concurrent use.
type Proxy struct {
	srv       *http.Server
	ln        net.Listener
	rp        *httputil.ReverseProxy
	transport *http.Transport

	mu          sync.Mutex
	reqs        []Request
	delay       time.Duration
	down        bool
	blackHole   bool
	inFlight    int
	maxInFlight int
	conns       map[net.Conn]struct{}
	maxConns    int
}

// NewProxy starts a proxy on 127.0.0.1:0 forwarding to target
// ("host:port", plain HTTP). It is closed through t.Cleanup.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: proxy listen: %v", err)
	}
	targetURL := &url.URL{Scheme: "http", Host: target}
	p := &Proxy{
		ln:        ln,
		conns:     map[net.Conn]struct{}{},
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targetURL)
		},
		Transport:     p.transport,
		FlushInterval: -1,
		// Canceled client requests are normal here; they would only be noise.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.trackConn,
	}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		p.transport.CloseIdleConnections()
	})
	return p
}

// Addr returns the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Requests returns a copy of the requests forwarded since the start or the
// last Reset, oldest first. Requests refused while down are not included.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}

// Count returns how many recorded requests match (all if match is nil).
func (p *Proxy) Count(match func(Request) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if match == nil {
		return len(p.reqs)
	}
	n := 0
	for _, r := range p.reqs {
		if match(r) {
			n++
		}
	}
	return n
}

// PathIs matches requests for exactly path (for Count).
func PathIs(path string) func(Request) bool {
	return func(r Request) bool { return r.Path == path }
}

// Reset forgets the recorded requests and restarts MaxInFlight and
// MaxConns from the numbers open now.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
	p.maxInFlight = p.inFlight
	p.maxConns = len(p.conns)
}

// SetDelay holds every request for d before forwarding it (0 = none). A
// request whose client gives up during the delay is never forwarded.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// MaxInFlight returns the highest number of requests in the proxy at once
// (delayed ones included) since the start or the last Reset.
func (p *Proxy) MaxInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxInFlight
}

// Conns returns how many client connections are open now: what a client's
// connection pool holds to the target through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// MaxConns returns the highest number of client connections open at once
// since the start or the last Reset.
func (p *Proxy) MaxConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxConns
}

// SetBlackHole(true) makes the target hang, as a server that accepts
// connections and never answers does: new connections are accepted and
// their requests read but never forwarded, and responses of requests
// already in flight (blocking queries included) are withheld. Each such
// request waits until its client gives up. Nothing is reset, so a client
// notices only through its own deadlines. SetBlackHole(false) forwards new
// requests again; requests held meanwhile still get no answer.
func (p *Proxy) SetBlackHole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blackHole = on
}

func (p *Proxy) blackHoled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blackHole
}

// SetDown(true) makes the target look unreachable without stopping it:
// open connections (and the requests on them, blocking queries included)
// are cut, and every new request gets its connection reset without an
// answer. SetDown(false) forwards again.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var cut []net.Conn
	if down {
		for c := range p.conns {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		ResetConn(c)
	}
}

// ServeHTTP records, delays and forwards one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		ResetRequest(w, "harness proxy: down")
		return
	}
	if p.blackHole {
		p.mu.Unlock()
		hang(r)
		return
	}
	p.reqs = append(p.reqs, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	delay := p.delay
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if delay > 0 {
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}
	p.rp.ServeHTTP(&holdWriter{ResponseWriter: w, p: p, r: r}, r)
}

// hang holds a request without an answer until its client gives up (or
// the proxy closes, which cancels it too).
func hang(r *http.Request) { <-r.Context().Done() }

// holdWriter withholds a forwarded request's response once the proxy is a
// black hole: the first write after that waits until the client gives up.
type holdWriter struct {
	http.ResponseWriter
	p    *Proxy
	r    *http.Request
	held bool
}

var errHeld = errors.New("harness proxy: response withheld (black hole)")

func (h *holdWriter) hold() bool {
	if !h.held && h.p.blackHoled() {
		h.held = true
		hang(h.r)
	}
	return h.held
}

func (h *holdWriter) WriteHeader(code int) {
	if !h.hold() {
		h.ResponseWriter.WriteHeader(code)
	}
}

func (h *holdWriter) Write(b []byte) (int, error) {
	if h.hold() {
		return 0, errHeld
	}
	return h.ResponseWriter.Write(b)
}

// FlushError lets the reverse proxy stream through the wrapper.
func (h *holdWriter) FlushError() error {
	if h.hold() {
		return errHeld
	}
	return http.NewResponseController(h.ResponseWriter).Flush()
}

func (p *Proxy) trackConn(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateNew:
		p.conns[c] = struct{}{}
		p.maxConns = max(p.maxConns, len(p.conns))
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

// ResetConn closes c with an RST rather than a FIN, as a vanished peer
// would look to the client.
func ResetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// ResetRequest answers a request by resetting its connection (a peer that
// vanished), or, where the connection cannot be taken over, with a 502
// saying why.
func ResetRequest(w http.ResponseWriter, why string) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			ResetConn(c)
			return
		}
	}
	http.Error(w, why, http.StatusBadGateway)
}
