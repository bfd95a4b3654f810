package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// access is what a route demands of a request before its handler runs.
type access int

const (
	// open: probes and scrapes; any Host, no token.
	open access = iota
	// api: /v1/ reads without a token; the Host and Origin checks.
	api
	// guarded: api, plus the admin token (or a loopback listener).
	guarded
)

// route is one endpoint: its ServeMux method and path, its metric label,
// what it demands and its handler.
type route struct {
	method, path string
	endpoint     string
	access       access
	handler      http.HandlerFunc
}

func (s *Server) routeTable() []route {
	metricsHandler := promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{})
	return []route{
		{method: "GET", path: "/metrics", endpoint: epMetrics, access: open, handler: metricsHandler.ServeHTTP},
		{method: "GET", path: "/healthz", endpoint: epHealthz, access: open, handler: func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }},
		{method: "GET", path: "/readyz", endpoint: epReadyz, access: open, handler: s.readyz},
		{method: "GET", path: "/v1/status", endpoint: epStatus, access: api, handler: s.status},
		{method: "POST", path: "/v1/resync", endpoint: epResync, access: guarded, handler: s.resync},
		{method: "GET", path: "/v1/resync", endpoint: epResyncList, access: guarded, handler: s.resyncList},
		{method: "GET", path: "/v1/resync/{id}", endpoint: epResyncGet, access: guarded, handler: s.resyncGet},
		{method: "GET", path: "/v1/diff", endpoint: epDiff, access: guarded, handler: s.diff},
		// Go's profiles (index, named profiles, CPU profile, trace),
		// guarded: they show the process's memory and cost CPU.
		{method: "GET", path: "/debug/pprof/", endpoint: epPprof, access: guarded, handler: pprof.Index},
		{method: "GET", path: "/debug/pprof/cmdline", endpoint: epPprof, access: guarded, handler: pprof.Cmdline},
		{method: "GET", path: "/debug/pprof/profile", endpoint: epPprof, access: guarded, handler: pprof.Profile},
		{method: "GET", path: "/debug/pprof/symbol", endpoint: epPprof, access: guarded, handler: pprof.Symbol},
		{method: "GET", path: "/debug/pprof/trace", endpoint: epPprof, access: guarded, handler: pprof.Trace},
	}
}

// routes builds the handler: one ServeMux pattern per route, and for every
// other request a 405 naming the allowed methods (a known path) or a 404.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path -> allowed methods
	for _, rt := range s.routeTable() {
		h := s.recovered(rt.handler)
		switch rt.access {
		case api:
			h = s.browserChecked(h)
		case guarded:
			h = s.browserChecked(s.authorized(h))
		}
		mux.Handle(rt.method+" "+rt.path, s.metrics.instrument(rt.endpoint, h))
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	// known matches a request's path alone against the routes' paths.
	known := http.NewServeMux()
	for path, ms := range methods {
		if slices.Contains(ms, "GET") {
			ms = append(ms, "HEAD") // a GET pattern serves HEAD too
		}
		slices.Sort(ms)
		allow := strings.Join(ms, ", ")
		known.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, ErrorResponse{Error: fmt.Sprintf("method not allowed: %s %s (allowed: %s)", r.Method, r.URL.Path, allow)})
		})
	}
	mux.Handle("/", s.metrics.instrument(epUnmatched, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := known.Handler(r); pattern != "" {
			known.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)})
	})))
	return mux
}

// recovered turns a handler's panic into a logged 500, so a bug in one
// request neither kills the connection silently nor goes unnoticed.
func (s *Server) recovered(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p) // net/http's way to abort a response: let it through
			}
			s.metrics.panics.Inc()
			s.log.Error("admin request panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			writeError(w, http.StatusInternalServerError, ErrorResponse{Error: fmt.Sprintf("internal error: panic: %v", p)})
		}()
		next(w, r)
	}
}
