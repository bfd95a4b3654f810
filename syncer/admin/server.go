// Package admin serves the controller's admin HTTP API: metrics, health,
// readiness, status, forced resync and dry-run diff. Client is the matching
// HTTP client the ops CLI uses.
//
// Authorisation: POST /v1/resync, GET /v1/resync[/<id>] and GET /v1/diff
// need "Authorization: Bearer <token>" when a token is configured. Without a
// token they are served only when the listener is bound to a loopback
// address (any local user may then call them, as with Consul's own agent
// API in dev mode); on any other listener they answer 403 until a token is
// configured. /metrics, /healthz, /readyz and /v1/status never need a token.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gwsync/gwsync/syncer"
)

// Controller is what the admin API needs of the sync controller.
type Controller interface {
	Gateways() []string
	Sync(ctx context.Context, req syncer.Request) (syncer.Result, error)
	Status() syncer.Status
	Ready() bool
}

var _ Controller = (*syncer.Controller)(nil)

// Options configure a Server.
type Options struct {
	Controller Controller
	// Address to listen on (host:port; port 0 picks a free one).
	Address string
	// Token, if not empty, is required as a bearer token by the resync and
	// diff endpoints.
	Token string
	// Gatherer is served on /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the admin API's own metrics. Nil means Gatherer,
	// if it is also a Registerer (a *prometheus.Registry is), else none are
	// exported.
	Registerer prometheus.Registerer
	Logger     hclog.Logger
	// MaxFinished, MaxRunning and ResyncTimeout: zero means the Default…
	// constants.
	MaxFinished   int
	MaxRunning    int
	ResyncTimeout time.Duration
	// DiffTimeout bounds a dry-run reconcile; zero means DefaultDiffTimeout.
	DiffTimeout time.Duration
	// AllowedHosts are host names (without port) accepted in the Host
	// header of /v1/ requests, besides IP addresses, "localhost" and the
	// host of Address.
	AllowedHosts []string
	// HTTP server bounds; zero means the Default… constants (WriteTimeout:
	// DiffTimeout plus a margin, so a diff's answer is still written).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// DefaultDiffTimeout bounds GET /v1/diff: a dry run waits for a running
// reconcile of the gateway, then reads the source and the mirror.
const DefaultDiffTimeout = 2 * time.Minute

// Server is the admin HTTP server.
type Server struct {
	opts    Options
	log     hclog.Logger
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
	jobs    *jobs
	token   [sha256.Size]byte
	// loopback is set by Run when the listener is bound to a loopback
	// address; it decides whether token-less mutating calls are served.
	loopback atomic.Bool

	// base is the context resyncs run under; Run cancels it on shutdown.
	base       context.Context
	cancelBase context.CancelFunc
	closeOnce  sync.Once
}

// New builds the admin server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	reg := opts.Registerer
	if reg == nil {
		if r, ok := opts.Gatherer.(prometheus.Registerer); ok {
			reg = r
		} else {
			reg = prometheus.NewRegistry() // metrics kept, not exported
		}
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	m := newMetrics(reg)
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), metrics: m, token: sha256.Sum256([]byte(opts.Token))}
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.jobs = &jobs{ctrl: opts.Controller, log: s.log, metrics: m, now: time.Now,
		timeout: or(opts.ResyncTimeout, DefaultResyncTimeout), maxRunning: or(opts.MaxRunning, DefaultMaxRunning),
		maxFinished: or(opts.MaxFinished, DefaultMaxFinished), byID: map[string]*Resync{}}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /v1/status", s.status)
	s.mux.HandleFunc("POST /v1/resync", s.authorized(s.resync))
	s.mux.HandleFunc("GET /v1/resync", s.authorized(s.resyncList))
	s.mux.HandleFunc("GET /v1/resync/{id}", s.authorized(s.resyncGet))
	s.mux.HandleFunc("GET /v1/diff", s.authorized(s.diff))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, ErrorResponse{Error: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)})
	})
	s.handler = m.instrument(s.mux)
	return s
}

func or[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Handler returns the server's HTTP handler. Without Run, token-less
// mutating calls are refused (the listener is not known to be loopback).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.opts.Controller.Ready() {
		http.Error(w, "not ready: not every gateway has completed a full sync", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// authorized guards an endpoint with the admin token (see the package doc).
func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token == "" {
			if !s.loopback.Load() {
				writeError(w, http.StatusForbidden, ErrorResponse{Error: "no admin token is configured and the admin listener is not loopback-only: configure admin.token_file to use this endpoint"})
				return
			}
			next(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		// Compare fixed-size digests: constant time, and no length leak.
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gwsync"`)
			msg := "missing admin token: send Authorization: Bearer <token>"
			if ok {
				msg = "invalid admin token"
			}
			writeError(w, http.StatusUnauthorized, ErrorResponse{Error: msg})
			return
		}
		next(w, r)
	}
}

// Run listens on the configured address until ctx ends, then shuts down
// gracefully: it stops accepting requests, cancels running resyncs and
// waits for them. ready, if not nil, receives the bound address.
func (s *Server) Run(ctx context.Context, ready func(addr string)) error {
	defer s.closeOnce.Do(s.cancelBase)
	ln, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	bound := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		s.loopback.Store(true)
	}
	if s.opts.Token == "" {
		if s.loopback.Load() {
			s.log.Warn("no admin token configured: resync and diff are open to every local user of this host", "address", bound)
		} else {
			s.log.Warn("no admin token configured and the listener is not loopback: resync and diff are refused", "address", bound)
		}
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(bound)
	}
	s.log.Info("admin API listening", "address", bound)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	s.closeOnce.Do(s.cancelBase)
	if werr := s.jobs.wait(sctx); werr != nil {
		s.log.Warn("resyncs still running at shutdown", "error", werr)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	return nil
}
