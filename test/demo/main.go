// Command demo is gwsync's one-command demo (`make demo`). On loopback it
// starts a two-DC WAN-federated public Consul and two dedicated Consul
// clusters (real `consul agent -dev` processes), sample HTTP backends
// registered in the public Consul, two sync controller replicas
// (`gwsync run -replica r1|r2`, sharing the gateways through Consul locks)
// and the reference gateway (`gwsync gateway`). It shows the status with
// each gateway's owner, requests through the gateway, a change reaching the
// gateway through the event path in well under a second (the full
// reconcile is minutes away), a graceful handover of a replica's gateways,
// then kills the gateway's dedicated cluster and shows traffic switching
// to the public cluster, restarts it and shows the owner refill it and the
// gateway use it again. Every process it starts is stopped at the end, on
// Ctrl-C and on any error. Its own smoke test runs it under `go test` and
// checks its output.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options configure a demo run.
type options struct {
	gwsync  string // gwsync binary
	consul  string // consul binary
	workdir string // config and logs go here
	// started, if set, is told about every process the demo starts.
	started func(name string, pid int)
	// scraped, if set, receives each /metrics exposition the demo reads
	// ("gateway", "controller").
	scraped func(name string, exposition []byte)
}

func main() {
	var o options
	flag.StringVar(&o.gwsync, "gwsync", "bin/gwsync", "gwsync binary")
	flag.StringVar(&o.consul, "consul", "bin/consul", "consul binary")
	flag.StringVar(&o.workdir, "workdir", ".demo", "directory for the configuration and the logs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
}

const (
	adminToken = "demo-token"
	// gatewayTimeout bounds one request through the reference gateway.
	gatewayTimeout = 5 * time.Second
	// switchTimeout bounds waiting for the gateway to change source (to
	// the public cluster after the kill, back to local after the refill):
	// the resolver's local breaker opens after a few failures and probes
	// again every few seconds.
	switchTimeout = 60 * time.Second
)

// demo is one run's state.
type demo struct {
	options
	out   io.Writer
	ps    *procs
	done  <-chan struct{}
	dc1   *consul
	dc2   *consul
	edgeA *consul
	edgeB *consul
	// replicas are the controller replicas; admin and cfgPath are the
	// first one's (the ops CLI and the gateway use them).
	replicas []*replica
	owned    map[string][]string // replica -> gateways it writes
	cfgPath  string
	admin    string
	gw       string
	// gwMetrics is the reference gateway's metrics listener.
	gwMetrics string
	client    *http.Client
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	for _, p := range []*string{&o.gwsync, &o.consul, &o.workdir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	for _, bin := range []string{o.gwsync, o.consul} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w (run `make build consul` first)", err)
		}
	}
	logDir := filepath.Join(o.workdir, "logs")
	_ = os.RemoveAll(logDir)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	d := &demo{options: o, out: out, done: ctx.Done(), ps: &procs{logDir: logDir, started: o.started},
		client: &http.Client{Timeout: gatewayTimeout}}
	defer func() {
		d.say("stopping every process the demo started")
		d.ps.stopAll()
		d.line("all stopped; logs are in %s", logDir)
	}()
	steps := []func() error{d.startConsul, d.startBackends, d.startControllers, d.showStatus, d.startGateway,
		d.showEventPath, d.handOver, d.killDedicated, d.restartDedicated, d.showMetrics}
	for _, step := range steps {
		if err := step(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted")
			}
			return err
		}
	}
	d.say("demo finished")
	return nil
}

// say prints a section header; line prints an indented line.
func (d *demo) say(format string, a ...any)  { fmt.Fprintf(d.out, "\n==> "+format+"\n", a...) }
func (d *demo) line(format string, a ...any) { fmt.Fprintf(d.out, "    "+format+"\n", a...) }

func (d *demo) startConsul() error {
	d.say("starting the public Consul (dc1, dc2, WAN-federated) and two dedicated clusters (edge-a, edge-b)")
	var err error
	for _, c := range []struct {
		dst      **consul
		name, dc string
	}{{&d.dc1, "dc1", "dc1"}, {&d.dc2, "dc2", "dc2"}, {&d.edgeA, "edge-a", "edge-a"}, {&d.edgeB, "edge-b", "edge-b"}} {
		if *c.dst, err = newConsul(d.consul, c.name, c.dc); err != nil {
			return err
		}
	}
	errs := make(chan error, 4)
	for _, c := range []*consul{d.dc1, d.dc2, d.edgeA, d.edgeB} {
		go func() { errs <- c.start(d.ps, d.done) }()
	}
	for range 4 {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	if err := federate(d.done, d.dc1, d.dc2); err != nil {
		return err
	}
	for _, c := range []*consul{d.dc1, d.dc2, d.edgeA, d.edgeB} {
		kind := "public"
		if c == d.edgeA || c == d.edgeB {
			kind = "dedicated"
		}
		d.line("%-7s %-9s http://%s (pid %d)", c.name, kind, c.httpAddr(), c.proc.pid())
	}
	return nil
}

// backends: sample HTTP services answering with their name.
var backends = []struct{ id, service, dc string }{
	{"web-1", "web", "dc1"}, {"web-2", "web", "dc1"}, {"web-3", "web", "dc2"}, {"api-1", "api", "dc2"},
}

func (d *demo) startBackends() error {
	d.say("starting %d sample backends and registering them in the public Consul", len(backends))
	for _, b := range backends {
		port, err := d.startBackend(b.id, b.service, b.dc)
		if err != nil {
			return err
		}
		d.line("%-6s service %-4s in %s  http://127.0.0.1:%d", b.id, b.service, b.dc, port)
	}
	return nil
}

// startBackend serves "hello from <id> (<dc>)" on a free port until the
// demo ends and registers it as an instance of service in dc's catalog.
func (d *demo) startBackend(id, service, dc string) (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s (%s)\n", id, dc)
	})}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-d.done; _ = srv.Close() }()
	port := ln.Addr().(*net.TCPAddr).Port
	pub := d.dc1
	if dc == "dc2" {
		pub = d.dc2
	}
	return port, pub.register("host-"+id, id, service, port)
}

// config is a controller replica's configuration; the replicas' files
// differ only in the admin address. The full reconcile runs on the default
// schedule (every 5 minutes): changes reach the mirrors through the event
// path (blocking queries on the public cluster), and the demo's output is
// the same on every run.
func (d *demo) config(adminAddr string) string {
	return fmt.Sprintf(`# Written by the gwsync demo.
public {
  address = %q # dc1's server; dc2 is reached through WAN federation
}

query {
  failover {
    nearest_n   = 3
    datacenters = ["dc1", "dc2"]
  }
}

services {
  include = ["web", "api"]
}

gateway "edge-a" {
  source_datacenter = "dc1"
  dedicated {
    address = %q
  }
}

gateway "edge-b" {
  source_datacenter = "dc2"
  dedicated {
    address = %q
  }
}

ha {
  session_ttl = "10s" # a replica that dies is replaced within 2 x 10s + 5s
  lock_delay  = "5s"
}

admin {
  address = %q
  token   = %q
}
`, d.dc1.httpAddr(), d.edgeA.httpAddr(), d.edgeB.httpAddr(), adminAddr, adminToken)
}

// cli runs a gwsync ops command against the controller and prints it and
// its output.
func (d *demo) cli(args ...string) (int, error) {
	d.line("$ gwsync %s", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, d.gwsync, append(args, "-addr", d.admin, "-token", adminToken)...)
	outb, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(outb), "\n"), "\n") {
		d.line("%s", l)
	}
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		return code, fmt.Errorf("gwsync %s: %w", args[0], err)
	}
	return code, nil
}

func (d *demo) showStatus() error {
	d.say("the status at replica %s (every gateway's owner; resync and diff -follow reach it)", d.replicas[0].id)
	code, err := d.cli("status")
	if err == nil && code != 0 {
		err = fmt.Errorf("gwsync status: exit status %d", code)
	}
	return err
}
