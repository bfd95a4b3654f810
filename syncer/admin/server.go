// Package admin serves the controller's admin HTTP API: metrics, health,
// readiness, status, forced resync and dry-run diff.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	Address    string
	Token      string
	Gatherer   prometheus.Gatherer
	Logger     hclog.Logger
}

// Server is the admin HTTP server.
type Server struct {
	opts Options
	mux  *http.ServeMux
}

// New builds the admin server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.opts.Controller.Ready() {
		http.Error(w, "not ready: not every gateway has completed a full sync", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Run listens on the configured address until ctx ends, then shuts down
// gracefully. ready, if not nil, receives the bound address.
func (s *Server) Run(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr().String())
	}
	s.opts.Logger.Info("admin API listening", "address", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin server shutdown: %w", err)
	}
	return nil
}
