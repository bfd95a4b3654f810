package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/gwsync/gwsync/config"
	"github.com/gwsync/gwsync/syncer"
	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/consul"
)

func runController(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwsync run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "path to the HCL configuration file (required)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log in JSON")
	replica := fs.String("replica", "", "this replica's ID, stable across restarts (default: ha.replica_id, else $"+envReplica+", else the host name)")
	advertise := fs.String("advertise", "", "host[:port] where the other replicas reach this replica's admin API (default $"+envAdvertise+", else admin.address; the port defaults to admin.address's)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gwsync run: -config FILE is required and no positional arguments are accepted")
		return 2
	}
	log, err := newLogger("gwsync", *logLevel, *logJSON, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gwsync run: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "gwsync run: invalid configuration:\n%v\n", err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	id, err := replicaID(*replica, cfg.HA.ReplicaID, os.Getenv, os.Hostname)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 2
	}
	adv, err := advertiseAddr(cmp.Or(*advertise, os.Getenv(envAdvertise)), cfg.Admin.Address)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 2
	}
	if h, _, err := net.SplitHostPort(adv); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		log.Warn("the advertised admin address is a wildcard: other replicas cannot forward requests for the gateways this one owns (set -advertise or $"+envAdvertise+")", "advertise", adv)
	}
	log = log.With("replica", id)
	opts, err := consul.Setup(cfg, syncer.Options{Logger: log, Registerer: reg, Replica: id, AdvertiseAddr: adv})
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	ctrl, err := syncer.New(cfg, opts)
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	readCheck, err := consul.NewReadCheck(cfg, log, reg) // the gateways' public read token
	if err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	hosts := cfg.Admin.AllowedHosts
	if h, _, err := net.SplitHostPort(adv); err == nil && h != "" {
		hosts = append(hosts, h) // the other replicas (and -follow) reach it by that name
	}
	srv := admin.New(admin.Options{Controller: ctrl, Address: cfg.Admin.Address, Token: cfg.Admin.Token, AllowedHosts: hosts,
		Gatherer: reg, Logger: log.Named("admin")})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ctrl.Run(gctx) })
	g.Go(func() error { return srv.Run(gctx, nil) })
	g.Go(func() error { return readCheck.Run(gctx) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gwsync validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "path to the HCL configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "gwsync validate: -config FILE is required")
		return 2
	}
	cfg, err := config.Load(*cfgPath, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings { // what gwsync run logs at start
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: valid (%d gateways, source datacenters %v)\n", *cfgPath, len(cfg.Gateways), cfg.SourceDatacenters())
	return 0
}

func newLogger(name, level string, json bool, out io.Writer) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("unknown log level %q (want trace, debug, info, warn or error)", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lvl, JSONFormat: json, Output: out}), nil
}

// Environment variables of gwsync run (the Helm chart sets them from the
// pod's name and IP).
const (
	envReplica   = "GWSYNC_REPLICA"
	envAdvertise = "GWSYNC_ADVERTISE"
)

// replicaID picks this replica's ID: the flag, the configuration, the
// environment, the host name; in that order.
func replicaID(flagValue, configured string, getenv func(string) string, hostname func() (string, error)) (string, error) {
	for _, v := range []string{flagValue, configured, getenv(envReplica)} {
		if v != "" {
			return v, nil
		}
	}
	h, err := hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("no replica ID: set -replica, ha.replica_id or $%s (host name: %v)", envReplica, err)
	}
	return h, nil
}

// advertiseAddr is where the other replicas reach this one's admin API:
// adv as host:port, or a bare host (an IPv6 literal included, as a pod IP
// is) with admin.address's port; admin.address itself when adv is empty.
func advertiseAddr(adv, adminAddr string) (string, error) {
	if adv == "" {
		return adminAddr, nil
	}
	_, adminPort, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return "", fmt.Errorf("admin.address %q: %w", adminAddr, err)
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil { // no port: a host name, an IPv4 or IPv6 address
		host, port = strings.TrimSuffix(strings.TrimPrefix(adv, "["), "]"), adminPort
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", fmt.Errorf("advertise address %q: neither host:port nor a host", adv)
		}
	}
	if host == "" || strings.ContainsAny(host, " /[]") {
		return "", fmt.Errorf("advertise address %q: no usable host", adv)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("advertise address %q: port %q is not 1-65535", adv, port)
	}
	return net.JoinHostPort(host, port), nil
}
