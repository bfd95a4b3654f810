// Package refgw is gwsync's reference HTTP gateway: a small reverse proxy
// that routes /<service>/<rest> to an instance the resolver picked. It
// exists for the demo and the end-to-end tests; production gateways embed
// the gateway package instead.
package refgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/gateway"
)

// SourceHeader carries the answer's source (local, public, memory,
// snapshot, none) on every response.
const SourceHeader = "X-Gwsync-Source"

// Resolver is what the handler needs of a *gateway.Resolver.
type Resolver interface {
	Resolve(ctx context.Context, service string) (gateway.Answer, error)
}

var _ Resolver = (*gateway.Resolver)(nil)

// Handler proxies /<service>/<rest> to <instance>/<rest>.
type Handler struct {
	resolver Resolver
	proxy    *httputil.ReverseProxy
	log      hclog.Logger
}

type targetKey struct{}

type target struct {
	host string
	path string
}

// New returns a handler. The upstream transport has its own timeouts and no
// environment proxy settings.
func New(r Resolver, logger hclog.Logger) *Handler {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Handler{resolver: r, log: logger.Named("refgw")}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       50 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t, _ := pr.In.Context().Value(targetKey{}).(target)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.host
			pr.Out.URL.Path = t.path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = ""
			pr.SetXForwarded()
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t, _ := r.Context().Value(targetKey{}).(target)
			h.log.Warn("upstream failed", "upstream", t.host, "error", err)
			http.Error(w, fmt.Sprintf("gwsync gateway: upstream %s failed", t.host), http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return h
}

// ServeHTTP resolves the first path segment and proxies the rest. Any
// path is a name to resolve: the resolver refuses impossible names and
// bounds what unknown ones cost.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service, rest := splitPath(r.URL.Path)
	if service == "" {
		http.Error(w, "gwsync gateway: no service in path; use /<service>/...", http.StatusNotFound)
		return
	}
	ans, err := h.resolver.Resolve(r.Context(), service)
	if err != nil {
		h.resolveFailed(w, service, err)
		return
	}
	w.Header().Set(SourceHeader, ans.Source.String())
	inst, ok := gateway.PickWeighted(ans.Instances)
	if !ok {
		http.Error(w, fmt.Sprintf("gwsync gateway: service %q has no healthy instances", shorten(service)), http.StatusServiceUnavailable)
		return
	}
	ctx := context.WithValue(r.Context(), targetKey{}, target{host: inst.HostPort(), path: rest})
	h.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// resolveFailed answers a failed lookup: 404 for a name no service can
// have, 503 otherwise. Failures any client can cause at will (bad names,
// the resolver's public budget spent) are logged at debug level only, so
// a flood of made-up paths does not flood the log.
func (h *Handler) resolveFailed(w http.ResponseWriter, service string, err error) {
	w.Header().Set(SourceHeader, gateway.SourceNone.String())
	msg := fmt.Sprintf("gwsync gateway: cannot resolve service %q: %v", shorten(service), err)
	switch {
	case errors.Is(err, gateway.ErrInvalidName):
		h.log.Debug("invalid service name", "service", shorten(service))
		http.Error(w, fmt.Sprintf("gwsync gateway: no service %q: %v", shorten(service), gateway.ErrInvalidName), http.StatusNotFound)
		return
	case errors.Is(err, gateway.ErrPublicBusy), errors.Is(err, context.Canceled):
		h.log.Debug("resolve failed", "service", shorten(service), "error", err)
	default:
		h.log.Warn("resolve failed", "service", shorten(service), "error", err)
	}
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// shorten bounds a client-chosen name in responses and logs.
func shorten(s string) string {
	const limit = 128
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// splitPath turns "/web/a/b" into ("web", "/a/b") and "/web" into ("web", "/").
func splitPath(p string) (service, rest string) {
	p = strings.TrimPrefix(p, "/")
	service, rest, _ = strings.Cut(p, "/")
	return service, "/" + rest
}

// Serve runs srv on ln until ctx ends, then shuts it down gracefully
// (in-flight requests get up to grace to finish).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
