package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// sourceHeader is the reference gateway's response header naming where the
// answer came from (local, public, memory, snapshot).
const sourceHeader = "X-Gwsync-Source"

// command builds a short-lived child (an ops CLI call) in its own process
// group, killed with ctx.
func command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = procAttr()
	return cmd
}

// reply is one response through the gateway.
type reply struct {
	code   int
	body   string
	source string
}

func (r reply) String() string {
	return fmt.Sprintf("%d %q  %s: %s", r.code, r.body, sourceHeader, r.source)
}

func (d *demo) get(path string) (reply, error) {
	resp, err := d.client.Get("http://" + d.gw + path)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return reply{}, err
	}
	return reply{code: resp.StatusCode, body: strings.TrimSpace(string(b)), source: resp.Header.Get(sourceHeader)}, nil
}

// waitSource polls path until the gateway answers 200 from source; it
// returns how many requests were sent and how many failed meanwhile.
func (d *demo) waitSource(path, source string) (sent, failed int, err error) {
	err = poll(d.done, switchTimeout, fmt.Sprintf("gateway answering %s from %s", path, source), func() error {
		sent++
		r, err := d.get(path)
		if err != nil || r.code != http.StatusOK {
			failed++
			return fmt.Errorf("GET %s: %v %v", path, r, err)
		}
		if r.source != source {
			return fmt.Errorf("GET %s answered from %q", path, r.source)
		}
		return nil
	})
	return sent, failed, err
}

// requests prints one request per path.
func (d *demo) requests(paths ...string) error {
	for _, p := range paths {
		r, err := d.get(p)
		if err != nil {
			return err
		}
		d.line("GET %-6s -> %s", p, r)
		if r.code != http.StatusOK {
			return fmt.Errorf("GET %s through the gateway: %s", p, r)
		}
	}
	return nil
}

func (d *demo) startGateway() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	d.gw = fmt.Sprintf("127.0.0.1:%d", ports[0])
	d.gwMetrics = fmt.Sprintf("127.0.0.1:%d", ports[1])
	d.say("starting the reference gateway for edge-a: gwsync gateway -gateway edge-a -listen %s", d.gw)
	p, err := d.ps.start("gwsync-gateway", d.gwsync, "gateway", "-config", d.cfgPath, "-gateway", "edge-a",
		"-listen", d.gw, "-metrics-listen", d.gwMetrics)
	if err != nil {
		return err
	}
	if _, _, err := d.waitSource("/web/", "local"); err != nil {
		return fmt.Errorf("%w\n%s", err, p.tail(20))
	}
	d.say("requests through the gateway (edge-a reads its dedicated cluster; api only exists in dc2: failover)")
	return d.requests("/web/", "/web/", "/api/")
}

func (d *demo) killDedicated() error {
	d.say("killing edge-a's dedicated Consul (pid %d): the gateway must keep serving", d.edgeA.proc.pid())
	d.edgeA.proc.kill()
	sent, failed, err := d.waitSource("/web/", "public")
	if err != nil {
		return err
	}
	d.line("source switched to the public cluster after %d requests, %d of them failed", sent, failed)
	// Each service switches on its own: until its first public answer, a
	// held service is answered from memory (its last good answer).
	if _, _, err := d.waitSource("/api/", "public"); err != nil {
		return err
	}
	return d.requests("/web/", "/api/")
}

func (d *demo) restartDedicated() error {
	d.say("restarting edge-a's dedicated Consul: it comes back empty, as a restarted dev server does")
	start := time.Now()
	if err := d.edgeA.start(d.ps, d.done); err != nil {
		return err
	}
	d.line("edge-a http://%s (pid %d)", d.edgeA.httpAddr(), d.edgeA.proc.pid())
	d.say("edge-a's owner takes its lock in the new cluster and refills it; the gateway reads it again")
	sent, failed, err := d.waitSource("/web/", "local")
	if err != nil {
		return err
	}
	if _, _, err := d.waitSource("/api/", "local"); err != nil {
		return err
	}
	d.line("local again %s after the restart (%d requests, %d failed)", roundMs(time.Since(start)), sent, failed)
	if err := d.requests("/web/", "/api/"); err != nil {
		return err
	}
	d.say("a resync finds nothing left to write")
	code, err := d.cli("resync", "-gateway", "edge-a", "-wait")
	if err == nil && code != 0 {
		err = fmt.Errorf("resync after the refill: exit status %d", code)
	}
	if err != nil {
		return err
	}
	return d.showStatus()
}

// showMetrics prints a few series from the gateway's and the controller's
// /metrics: where the gateway's answers came from, and what the mirrors hold.
func (d *demo) showMetrics() error {
	d.say("metrics (GET /metrics): the gateway's lookups by source, the controller's mirrors")
	for _, m := range []struct{ name, addr, prefix string }{
		{"gateway", d.gwMetrics, "gwsync_resolver_lookups_total{"},
		{"controller", d.admin, "gwsync_mirrored_instances{"},
	} {
		resp, err := d.client.Get("http://" + m.addr + "/metrics")
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if d.scraped != nil {
			d.scraped(m.name, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, m.prefix) && !strings.HasSuffix(l, " 0") {
				d.line("%-10s %s", m.name, l)
			}
		}
	}
	return nil
}
