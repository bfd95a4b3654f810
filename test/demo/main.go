// Command demo is gwsync's one-command demo (`make demo`). On loopback it
// starts a two-DC WAN-federated public Consul and two dedicated Consul
// clusters (real `consul agent -dev` processes), sample HTTP backends
// registered in the public Consul, the sync controller (`gwsync run`) and
// the reference gateway (`gwsync gateway`). It then shows the status table
// and requests through the gateway, kills the gateway's dedicated cluster
// and shows traffic still flowing from the public cluster, restarts it and
// shows it refilled and used again. Every process it starts is stopped at
// the end, on Ctrl-C and on any error. Its own smoke test runs it under
// `go test` and checks its output.
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
	out     io.Writer
	ps      *procs
	done    <-chan struct{}
	dc1     *consul
	dc2     *consul
	edgeA   *consul
	edgeB   *consul
	cfgPath string
	admin   string
	gw      string
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
	steps := []func() error{d.startConsul, d.startBackends, d.startController, d.showStatus, d.startGateway,
		d.killDedicated, d.restartDedicated, d.showMetrics}
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
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %s (%s)\n", b.id, b.dc)
		})}
		go func() { _ = srv.Serve(ln) }()
		go func() { <-d.done; _ = srv.Close() }()
		port := ln.Addr().(*net.TCPAddr).Port
		pub := d.dc1
		if b.dc == "dc2" {
			pub = d.dc2
		}
		if err := pub.register("host-"+b.id, b.id, b.service, port); err != nil {
			return err
		}
		d.line("%-6s service %-4s in %s  http://127.0.0.1:%d", b.id, b.service, b.dc, port)
	}
	return nil
}

func (d *demo) startController() error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	d.admin = fmt.Sprintf("127.0.0.1:%d", ports[0])
	d.cfgPath = filepath.Join(d.workdir, "gwsync.hcl")
	if err := os.WriteFile(d.cfgPath, []byte(d.config()), 0o600); err != nil {
		return err
	}
	d.say("starting the controller: gwsync run -config %s", d.cfgPath)
	p, err := d.ps.start("gwsync-run", d.gwsync, "run", "-config", d.cfgPath)
	if err != nil {
		return err
	}
	err = poll(d.done, switchTimeout, "controller ready (first full sync of every gateway)", func() error {
		if p.exited() {
			return fmt.Errorf("gwsync run exited: %v\n%s", p.err, p.tail(20))
		}
		resp, err := d.client.Get("http://" + d.admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.line("admin API on http://%s, ready (every gateway completed its first full sync)", d.admin)
	return nil
}

// config is the controller's configuration. Schedules are long: the demo
// triggers resyncs itself with the ops CLI, so its output is the same on
// every run (a real deployment syncs every 15s by default).
func (d *demo) config() string {
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
  schedule          = "@every 1h"
  dedicated {
    address = %q
  }
}

gateway "edge-b" {
  source_datacenter = "dc2"
  schedule          = "@every 1h"
  dedicated {
    address = %q
  }
}

admin {
  address = %q
  token   = %q
}
`, d.dc1.httpAddr(), d.edgeA.httpAddr(), d.edgeB.httpAddr(), d.admin, adminToken)
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
	d.say("the controller's status")
	code, err := d.cli("status")
	if err == nil && code != 0 {
		err = fmt.Errorf("gwsync status: exit status %d", code)
	}
	return err
}
