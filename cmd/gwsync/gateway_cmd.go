package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/gateway"
	"github.com/gwsync/gwsync/gateway/refgw"
)

// gatewayShutdownGrace is how long in-flight proxied requests may take to
// finish once the gateway is told to stop.
const gatewayShutdownGrace = 10 * time.Second

// runGateway runs the reference HTTP gateway for one gateway of the
// configuration: /<service>/... is proxied to an instance the resolver picks.
// It reads the configuration the way a gateway host must: only the public
// block and its own gateway block, with their read tokens
// (config.LoadGateway), so the host holds no write or admin credential.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwsync gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "path to the HCL configuration (required; only the public block, the resolver block and this gateway's block are read)")
	name := fs.String("gateway", "", "name of the gateway block to serve (required)")
	listen := fs.String("listen", "127.0.0.1:8080", "address the gateway proxies on")
	metricsListen := fs.String("metrics-listen", "", "address for /metrics and /healthz; empty serves them on -listen under /_gwsync/")
	snapshot := fs.String("snapshot", "", "file for the resolver's last-known-good snapshot (default: resolver.snapshot_path; empty: none)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log in JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gwsync gateway: -config FILE and -gateway NAME are required, and no positional arguments are accepted")
		fs.Usage()
		return 2
	}
	log, err := newLogger("gwsync-gateway", *logLevel, *logJSON, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gwsync gateway: %v\n", err)
		return 2
	}
	gw, err := config.LoadGateway(*cfgPath, *name, os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "gwsync gateway: invalid configuration:\n%v\n", err)
		return 1
	}
	for _, w := range gw.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	// Local connections: one long-lived watch, the probe, and the re-reads
	// of changed services (gateway.DefaultReadConcurrency) with room.
	local, err := gw.Dedicated.NewClient(config.ClientOptions{MaxConnsPerHost: gateway.DefaultReadConcurrency + 4})
	if err != nil {
		log.Error("dedicated cluster client", "error", err)
		return 1
	}
	public, err := gw.Public.NewClient(config.ClientOptions{MaxConnsPerHost: gw.MaxConnsPerHost})
	if err != nil {
		log.Error("public cluster client", "error", err)
		return 1
	}
	snap := gw.SnapshotFile
	if *snapshot != "" {
		snap = *snapshot
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	resolver, err := gateway.New(gateway.Options{
		Local:             local,
		Public:            public,
		SourceDatacenter:  gw.SourceDatacenter,
		QueryName:         gw.QueryName,
		Gateway:           gw.Name,
		KVPrefix:          gw.KVPrefix,
		MaxMarkerAge:      gw.Resolver.MaxMarkerAge,
		PublicTimeout:     gw.Public.Timeout,
		MaxPublicInFlight: gw.MaxInFlightPerDC,
		PublicRate:        gw.Resolver.PublicRate,
		MaxServices:       gw.Resolver.MaxServices,
		IdleTimeout:       gw.Resolver.IdleTimeout,
		SnapshotPath:      snap,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	return serveGateway(ctx, resolver, reg, *listen, *metricsListen, stdout, stderr)
}

func serveGateway(ctx context.Context, resolver *gateway.Resolver, reg *prometheus.Registry, listen, metricsListen string, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "gwsync gateway: %v\n", err)
		return 1
	}
	ops := http.NewServeMux()
	ops.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ops.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resolver.Status())
	})
	mux := http.NewServeMux()
	mux.Handle("/", refgw.New(resolver, nil))
	var opsLn net.Listener
	if metricsListen != "" {
		if opsLn, err = net.Listen("tcp", metricsListen); err != nil {
			_ = ln.Close()
			fmt.Fprintf(stderr, "gwsync gateway: %v\n", err)
			return 1
		}
	} else {
		mux.Handle("/_gwsync/", http.StripPrefix("/_gwsync", ops))
	}
	fmt.Fprintf(stdout, "gwsync gateway: proxying on http://%s\n", ln.Addr())
	if opsLn != nil {
		fmt.Fprintf(stdout, "gwsync gateway: metrics on http://%s/metrics\n", opsLn.Addr())
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return resolver.Run(gctx) })
	g.Go(func() error {
		return refgw.Serve(gctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln, gatewayShutdownGrace)
	})
	if opsLn != nil {
		g.Go(func() error {
			return refgw.Serve(gctx, &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second}, opsLn, gatewayShutdownGrace)
		})
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "gwsync gateway: %v\n", err)
		return 1
	}
	return 0
}
