package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/watch"
)

// Controller is what the admin API needs of the sync controller.
//
// A controller may also implement Ownership (its replicas share the
// gateways) and EventReporter (it runs the event path); the server then
// uses them.
type Controller interface {
	Gateways() []string
	Sync(ctx context.Context, req syncer.Request) (syncer.Result, error)
	Status() syncer.Status
	Ready() bool
}

// EventReporter reports the state of the public change feed's loops
// (syncer/watch), shown per public DC in status.
type EventReporter interface {
	EventStatus() []watch.LoopStatus
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
	// HTTP server bounds; zero means the Default… constants. The write
	// timeout follows DiffTimeout (plus DiffWriteMargin), so a diff's
	// answer is always written.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// Defaults of the HTTP server's bounds.
const (
	// DefaultDiffTimeout bounds GET /v1/diff: a dry run waits for a running
	// reconcile of the gateway, then reads the source and the mirror.
	DefaultDiffTimeout = 2 * time.Minute
	// DiffWriteMargin is added to the diff timeout to give the write
	// timeout: the answer (a 504 at worst) is written after the dry run
	// ends, and a large change list takes a moment to encode and send.
	DiffWriteMargin = 30 * time.Second
	// DefaultReadHeaderTimeout: a request header arrives in one round
	// trip; ten seconds allows a slow link and stops a client that trickles
	// its header to hold a connection (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request; bodies are at
	// most maxBody (64 KiB).
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout keeps a connection between requests: longer than
	// the CLI's polling and a Prometheus scrape interval (so both reuse
	// their connection), short enough that idle clients do not pile up.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes: a token, the Host and a few headers need well
	// under 1 KiB; the rest is room for a browser's localhost cookies.
	// Beyond it the server answers 431.
	DefaultMaxHeaderBytes = 32 << 10
	// shutdownGrace bounds the graceful stop: in-flight requests and
	// resyncs (cancelled first) get this long to end.
	shutdownGrace = 10 * time.Second
)

// Server is the admin HTTP server.
type Server struct {
	opts    Options
	log     hclog.Logger
	handler http.Handler
	metrics *metrics
	jobs    *jobs
	token   [sha256.Size]byte
	hosts   map[string]bool
	cop     *http.CrossOriginProtection
	owners  Ownership     // nil: this replica writes every gateway
	events  EventReporter // nil: no event path
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
	opts.DiffTimeout = or(opts.DiffTimeout, DefaultDiffTimeout)
	m := newMetrics(reg)
	s := &Server{opts: opts, log: opts.Logger, metrics: m, token: sha256.Sum256([]byte(opts.Token)),
		hosts: allowedHosts(opts.Address, opts.AllowedHosts), cop: http.NewCrossOriginProtection()}
	s.owners, _ = opts.Controller.(Ownership)
	s.events, _ = opts.Controller.(EventReporter)
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.jobs = &jobs{ctrl: opts.Controller, log: s.log, metrics: m, now: time.Now,
		timeout: or(opts.ResyncTimeout, DefaultResyncTimeout), maxRunning: or(opts.MaxRunning, DefaultMaxRunning),
		maxFinished: or(opts.MaxFinished, DefaultMaxFinished), byID: map[string]*Resync{}}
	s.handler = s.routes()
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

// httpServer is the HTTP server with its bounds.
func (s *Server) httpServer() *http.Server {
	o := s.opts
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: or(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(o.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      o.DiffTimeout + DiffWriteMargin,
		IdleTimeout:       or(o.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    or(o.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
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
	srv := s.httpServer()
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
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
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
